//go:build linux

package localbuild

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestSparsify(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.raw")
	data := make([]byte, 8<<20)
	copy(data[1<<20:], "data at 1 MiB")
	copy(data[len(data)-10:], "tail bytes")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	blocks := func() int64 {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	before := blocks()
	freed, err := Sparsify(p)
	if err != nil {
		t.Fatal(err)
	}
	after := blocks()
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, data) {
		t.Fatal("content changed")
	}
	if freed < 7<<20 || after > before-7<<20 {
		t.Errorf("freed %d bytes; allocated %d -> %d", freed, before, after)
	}
}
