package fattest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kairos-io/kairos/internal/diskfmt/fat"
	"github.com/kairos-io/kairos/internal/diskfmt/fat/fattest"
	"github.com/kairos-io/kairos/internal/fstree"
)

// TestVerify: an image passes against the tree written and fails against
// any other.
func TestVerify(t *testing.T) {
	mk := func() *fstree.Node {
		r := fstree.Dir(0o755, 0)
		r.Add("EFI/BOOT/BOOTX64.EFI", fstree.File([]byte("loader"), 0o644, 0), 0o755, 0)
		r.Add("EFI/BOOT/grub.cfg", fstree.File([]byte("menu"), 0o644, 0), 0o755, 0)
		return r
	}
	p := filepath.Join(t.TempDir(), "esp.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := fat.Write(f, 4<<20, "ESP", mk(), fat.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := fattest.Verify(p, mk()); err != nil {
		t.Fatal(err)
	}
	boot := func(r *fstree.Node) *fstree.Node { return r.Children[0].Children[0] }
	for name, f := range map[string]func(*fstree.Node){
		"content": func(r *fstree.Node) { boot(r).Children[0].Open = fstree.BytesOpener([]byte("loadeR")) },
		"name":    func(r *fstree.Node) { boot(r).Children[1].Name = "GRUB.cfg" },
		"entry":   func(r *fstree.Node) { r.Add("x", fstree.File(nil, 0o644, 0), 0o755, 0) },
		"type":    func(r *fstree.Node) { boot(r).Children[1] = &fstree.Node{Name: "grub.cfg", Mode: os.ModeDir} },
	} {
		w := mk()
		f(w)
		if err := fattest.Verify(p, w); err == nil {
			t.Errorf("a different %s passes", name)
		}
	}
}
