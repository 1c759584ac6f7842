package ext4test_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/ext4"
	"github.com/kairos-io/kairos/internal/diskfmt/ext4/ext4test"
	"github.com/kairos-io/kairos/internal/fstree"
)

func tree() *fstree.Node {
	return &fstree.Node{Mode: fs.ModeDir | 0o755, ModTime: 7, Children: []*fstree.Node{
		{Name: "a b", Mode: 0o644, Size: 3, Open: fstree.BytesOpener([]byte("abc")), ModTime: 7, LinkID: 1},
		{Name: "dir", Mode: fs.ModeDir | fs.ModeSticky | 0o777, UID: 5, GID: 6, ModTime: 7, Children: []*fstree.Node{
			{Name: "again", Mode: 0o644, Size: 3, Open: fstree.BytesOpener([]byte("abc")), ModTime: 7, LinkID: 1},
			{Name: "dev", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, DevMajor: 259, DevMinor: 300000, ModTime: 7},
			{Name: "link", Mode: fs.ModeSymlink | 0o777, Target: "../a b", ModTime: 7},
			{Name: "slow", Mode: fs.ModeSymlink | 0o777, Target: strings.Repeat("x/", 40), ModTime: 7},
		}},
		{Name: "x", Mode: 0o755, Size: 5, Open: fstree.BytesOpener([]byte("hello")), ModTime: 7,
			Xattrs: map[string][]byte{"user.a": []byte("1")}},
	}}
}

func TestVerify(t *testing.T) {
	img := filepath.Join(t.TempDir(), "fs.img")
	if _, err := ext4.WriteFile(img, tree(), ext4.Options{ModTime: time.Unix(7, 0), Size: 200 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := ext4test.Verify(img, tree()); err != nil {
		t.Fatalf("the tree written: %v", err)
	}
	if got, err := ext4test.ReadFile(img, "/dir/again"); err != nil || string(got) != "abc" {
		t.Errorf("ReadFile: %q, %v", got, err)
	}
	if _, err := ext4test.ReadFile(img, "/dir/link"); err == nil || !strings.Contains(err.Error(), "is a symlink, not a regular file") {
		t.Errorf("ReadFile of a symlink: %v", err)
	}
	if _, err := ext4test.ReadFile(img, "/missing"); err == nil {
		t.Error("ReadFile of a missing file")
	}
	child := func(n *fstree.Node, p string) *fstree.Node { // symlinks not followed
		for _, name := range fstree.SplitPath(p) {
			n = n.Child(name)
		}
		return n
	}
	for want, edit := range map[string]func(r *fstree.Node){
		"/dir: mode 1777, want 777":                func(r *fstree.Node) { child(r, "dir").Mode &^= fs.ModeSticky },
		"/dir: owner 5:6, want 5:7":                func(r *fstree.Node) { child(r, "dir").GID = 7 },
		"/x: mtime 7, want 8":                      func(r *fstree.Node) { child(r, "x").ModTime = 8 },
		"/x: content differs":                      func(r *fstree.Node) { child(r, "x").Open = fstree.BytesOpener([]byte("hellO")) },
		"/dir/dev: device 259:300000, want 259:3":  func(r *fstree.Node) { child(r, "dir/dev").DevMinor = 3 },
		`/dir/link: not a fast symlink to "../a"`:  func(r *fstree.Node) { child(r, "dir/link").Target = "../a" },
		"/dir/slow: slow symlink reads":            func(r *fstree.Node) { child(r, "dir/slow").Target = strings.Repeat("y/", 40) },
		"/x: xattr user.a = 31, want 32":           func(r *fstree.Node) { child(r, "x").Xattrs["user.a"] = []byte("2") },
		"/dir/again: 2 links, want 1":              func(r *fstree.Node) { child(r, "dir/again").LinkID = 0 },
		"/: debugfs ls shows 6 entries, want 5":    func(r *fstree.Node) { r.Children = r.Children[:2] },
		"/new: File not found":                     func(r *fstree.Node) { r.Children = append(r.Children, &fstree.Node{Name: "new"}) },
		"/x: debugfs lists 1 xattrs, want 0":       func(r *fstree.Node) { delete(child(r, "x").Xattrs, "user.a") },
		"ea_get: Extended attribute key not found": func(r *fstree.Node) { child(r, "x").Xattrs["user.b"] = nil },
	} {
		w := tree()
		edit(w)
		if err := ext4test.Verify(img, w); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}

	// A damaged backup superblock.
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0, 0}, 32768*4096+0x38); err != nil { // s_magic of group 1's copy
		t.Fatal(err)
	}
	f.Close()
	if err := ext4test.FsckPrimary(img); err != nil {
		t.Errorf("FsckPrimary: %v", err)
	}
	if err := ext4test.Fsck(img); err == nil || !strings.Contains(err.Error(), "-b 32768") {
		t.Errorf("Fsck with a damaged backup: %v", err)
	}
}
