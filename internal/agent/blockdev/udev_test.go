package blockdev

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWaitUdev(t *testing.T) {
	root := t.TempDir()
	h := Devices{Sys: filepath.Join(root, "sys")}
	data := filepath.Join(root, "run/udev/data")
	mk := func(name, dev, size string) {
		d := filepath.Join(h.Sys, "class/block", name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "dev"), []byte(dev+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "size"), []byte(size+"\n"), 0o644)
	}
	mk("vda", "254:0", "33554432")
	mk("vda1", "254:1", "2048")
	mk("sr0", "11:0", "0")    // empty drive: nothing to wait for
	mk("loop0", "7:0", "0")   // unused loop device
	mk("sr1", "11:1", "1024") // the CIDATA CD
	os.MkdirAll(data, 0o755)
	os.WriteFile(filepath.Join(data, "b254:0"), nil, 0o644)

	p, err := h.UdevPending(data)
	if err != nil || strings.Join(p, " ") != "sr1 vda1" {
		t.Fatalf("pending %v %v", p, err)
	}
	err = h.WaitUdev(data, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "sr1, vda1") {
		t.Fatalf("want the pending devices named, got %v", err)
	}
	// udev catches up while WaitUdev waits.
	go func() {
		time.Sleep(200 * time.Millisecond)
		os.WriteFile(filepath.Join(data, "b254:1"), nil, 0o644)
		os.WriteFile(filepath.Join(data, "b11:1"), nil, 0o644)
	}()
	start := time.Now()
	if err := h.WaitUdev(data, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("WaitUdev took %s after udev was done", time.Since(start))
	}
}
