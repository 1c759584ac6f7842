package isotest_test

import (
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/iso9660"
	"github.com/kairos-io/kairos/internal/diskfmt/iso9660/isotest"
	"github.com/kairos-io/kairos/internal/fstree"
)

// TestVerify: an image passes against the tree written and fails against
// any other.
func TestVerify(t *testing.T) {
	mk := func() *fstree.Node {
		r := fstree.Dir(0o755, 1700000000)
		r.Add("a/b.txt", fstree.File([]byte("hello"), 0o644, 1700000000), 0o755, 1700000000)
		r.Add("l", &fstree.Node{Mode: fs.ModeSymlink | 0o777, Target: "a//b.txt", ModTime: 1700000000}, 0o755, 0)
		return r
	}
	p := filepath.Join(t.TempDir(), "x.iso")
	if err := iso9660.WriteFile(p, &iso9660.Image{VolumeID: "X", ModTime: time.Unix(1700000000, 0), Root: mk(), Joliet: true}); err != nil {
		t.Fatal(err)
	}
	if err := isotest.Verify(p, mk(), isotest.Options{}); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(*fstree.Node){
		"content": func(r *fstree.Node) { r.Children[0].Children[0].Open = fstree.BytesOpener([]byte("hellO")) },
		"mode":    func(r *fstree.Node) { r.Children[0].Children[0].Mode = 0o600 },
		"time":    func(r *fstree.Node) { r.Children[0].ModTime++ },
		"owner":   func(r *fstree.Node) { r.UID = 5 },
		"target":  func(r *fstree.Node) { r.Children[1].Target = "a/c" },
		"extra":   func(r *fstree.Node) { r.Add("z", fstree.File(nil, 0o644, 0), 0o755, 0) },
	} {
		w := mk()
		f(w)
		if err := isotest.Verify(p, w, isotest.Options{}); err == nil {
			t.Errorf("a different %s passes", name)
		}
	}
}
