package qcow2test_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/diskfmt/qcow2"
	"github.com/kairos-io/kairos/internal/diskfmt/qcow2/qcow2test"
)

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	raw, img := filepath.Join(dir, "d.raw"), filepath.Join(dir, "d.qcow2")
	data := make([]byte, 4<<20)
	copy(data[1<<20:], "data in the second MiB")
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	src, _ := os.Open(raw)
	dst, _ := os.Create(img)
	if err := qcow2.Convert(dst, src, int64(len(data)), qcow2.Options{}); err != nil {
		t.Fatal(err)
	}
	src.Close()
	dst.Close()
	if err := qcow2test.Verify(img, raw); err != nil {
		t.Fatal(err)
	}
	if got, err := qcow2test.DataClusters(img, 64<<10); err != nil || len(got) != 1 || !got[16] {
		t.Errorf("DataClusters: %v, %v (want cluster 16 only)", got, err)
	}

	other := filepath.Join(dir, "other.raw")
	for want, edit := range map[string]func([]byte) []byte{
		"Content mismatch at offset 1048576": func(b []byte) []byte { b[1<<20] = 'D'; return b },
		"want a qcow2 of":                    func(b []byte) []byte { return append(b, make([]byte, 512)...) },
	} {
		if err := os.WriteFile(other, edit(append([]byte(nil), data...)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := qcow2test.Verify(img, other); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	// A refcount of the header cluster set to 0: qemu-img check reports it.
	f, _ := os.OpenFile(img, os.O_RDWR, 0)
	f.WriteAt([]byte{0, 0}, 3<<16) // the refcount block follows header, L1 and refcount table
	f.Close()
	if err := qcow2test.Verify(img, raw); err == nil || !strings.Contains(err.Error(), "qemu-img check") {
		t.Errorf("corrupt refcount: %v", err)
	}
}
