package squashfstest_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/diskfmt/squashfs"
	"github.com/kairos-io/kairos/internal/diskfmt/squashfs/squashfstest"
	"github.com/kairos-io/kairos/internal/fstree"
)

// tree has every entry type, names unsquashfs escapes, a hardlink group
// whose later name has other metadata (the first's is stored), a time
// squashfs clamps and a device unsquashfs prints wrongly (minor > 255).
func tree() *fstree.Node {
	return &fstree.Node{Mode: fs.ModeDir | 0o755, ModTime: 1700000000, Children: []*fstree.Node{
		{Name: `a "b\c`, Mode: 0o644, Size: 3, Open: fstree.BytesOpener([]byte("abc")), ModTime: 1 << 40, LinkID: 1},
		{Name: "dir", Mode: fs.ModeDir | fs.ModeSticky | 0o777, UID: 5, GID: 6, Children: []*fstree.Node{
			{Name: "again", Mode: 0o600, LinkID: 1, Size: 3, Open: fstree.BytesOpener([]byte("abc"))},
			{Name: "dev", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, DevMajor: 259, DevMinor: 300000},
			{Name: "fifo", Mode: fs.ModeNamedPipe | 0o644},
			{Name: "link", Mode: fs.ModeSymlink | 0o777, Target: "../a b"},
			{Name: "sock", Mode: fs.ModeSocket | fs.ModeSetgid | 0o755},
		}},
		{Name: "empty", Mode: 0o644},
		{Name: "x", Mode: fs.ModeSetuid | 0o755, Size: 5, Open: fstree.BytesOpener([]byte("hello")), ModTime: -5},
	}}
}

func TestVerify(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img.sqfs")
	if _, err := squashfs.WriteFile(img, tree(), squashfs.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := squashfstest.Verify(img, tree(), squashfstest.Options{}); err != nil {
		t.Fatalf("the tree written: %v", err)
	}
	child := func(n *fstree.Node, name string) *fstree.Node { return n.Child(name) }
	for want, edit := range map[string]func(r *fstree.Node){
		`"dir D 0 1777 5 6"`:           func(r *fstree.Node) { child(r, "dir").Mode &^= fs.ModeSticky },
		`"dir D 0 1777 5 7"`:           func(r *fstree.Node) { child(r, "dir").GID = 7 },
		`"x R 0 4755 0 0 5 3"`:         func(r *fstree.Node) { child(r, "x").ModTime = 1 }, // clamped to 0 when written
		`"dir/dev C 0 600 0 0 `:        func(r *fstree.Node) { child(r, "dir").Child("dev").DevMinor = 3000 },
		`"dir/link S 0 777 0 0 ../a`:   func(r *fstree.Node) { child(r, "dir").Child("link").Target = "../a" },
		`"dir/fifo I 0 644 0 0 f"`:     func(r *fstree.Node) { child(r, "dir").Child("fifo").Mode = fs.ModeSocket | 0o644 },
		`"dir/again L a\\ \\\"b\\\\c"`: func(r *fstree.Node) { child(r, "dir").Child("again").LinkID = 0 },
		`want "#"`:                     func(r *fstree.Node) { r.Children = r.Children[:2] },
		`want "new R 0 0 0 0 0 3"`:     func(r *fstree.Node) { r.Children = append(r.Children, &fstree.Node{Name: "new"}) },
		`want "abchellO"`:              func(r *fstree.Node) { child(r, "x").Open = fstree.BytesOpener([]byte("hellO")) },
		`want "empty R 0 644 0 0 1 3"`: func(r *fstree.Node) {
			e := child(r, "empty")
			e.Size, e.Open = 1, fstree.BytesOpener([]byte("!"))
		},
	} {
		w := tree()
		edit(w)
		if err := squashfstest.Verify(img, w, squashfstest.Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}
