package fstree

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// materialize creates n's entries under dir (dir itself is n): types,
// permission bits, owners (root only), times, content, targets, devices,
// xattrs and hardlinks, as DirSource must read them back.
func materialize(t *testing.T, dir string, n *Node) {
	t.Helper()
	links := map[uint64]string{}
	var mk func(p string, n *Node)
	mk = func(p string, n *Node) {
		var err error
		switch typ := n.Mode.Type(); {
		case n.LinkID != 0 && links[n.LinkID] != "":
			err = os.Link(links[n.LinkID], p)
		case typ == 0:
			data, _ := ReadFile(n, "/")
			err = os.WriteFile(p, data, 0o600)
		case typ == fs.ModeDir:
			err = os.Mkdir(p, 0o700)
		case typ == fs.ModeSymlink:
			err = os.Symlink(n.Target, p)
		case typ == fs.ModeNamedPipe:
			err = unix.Mkfifo(p, 0o600)
		case typ&fs.ModeDevice != 0:
			kind := uint32(unix.S_IFBLK)
			if typ&fs.ModeCharDevice != 0 {
				kind = unix.S_IFCHR
			}
			err = unix.Mknod(p, kind|0o600, int(unix.Mkdev(n.DevMajor, n.DevMinor)))
		}
		if err == nil && n.LinkID != 0 && links[n.LinkID] != "" {
			return
		}
		links[n.LinkID] = p
		if err == nil && n.UID|n.GID != 0 {
			err = os.Lchown(p, int(n.UID), int(n.GID))
		}
		if err == nil && n.Mode.Type() != fs.ModeSymlink {
			err = os.Chmod(p, n.Mode.Perm()|n.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		for k, v := range n.Xattrs {
			if err == nil {
				err = unix.Lsetxattr(p, k, v, 0)
			}
		}
		for _, c := range n.Children {
			mk(filepath.Join(p, c.Name), c)
		}
		ts := []unix.Timespec{unix.NsecToTimespec(n.ModTime * 1e9), unix.NsecToTimespec(n.ModTime * 1e9)}
		if err == nil {
			err = unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW) // after the children
		}
		if err != nil {
			t.Fatalf("making %s: %v", p, err)
		}
	}
	mk(dir, n)
}

func TestDirSource(t *testing.T) {
	linked := func(id uint64) *Node { n := File([]byte("shared"), 0o640, 30); n.LinkID = id; return n }
	want := Dir(0o751, 10)
	for p, n := range map[string]*Node{
		"etc/hosts":        File([]byte("127.0.0.1 localhost\n"), 0o644, 11),
		"etc/empty":        File(nil, 0, 12),
		"bin/su":           File([]byte("#!/bin/false\n"), fs.ModeSetuid|0o755, 13),
		"bin/wall":         File([]byte("wall"), fs.ModeSetgid|0o755, 14),
		"bin/sh":           {Mode: fs.ModeSymlink | 0o777, Target: "bash", ModTime: 15},
		"bin/dangling":     {Mode: fs.ModeSymlink | 0o777, Target: "../nowhere", ModTime: 16},
		"tmp":              {Mode: fs.ModeDir | fs.ModeSticky | 0o777, ModTime: 17},
		"run/fifo":         {Mode: fs.ModeNamedPipe | 0o620, ModTime: 18},
		"hl/a":             linked(1),
		"hl/b":             linked(1),
		"other/c":          linked(1),
		"xattr":            {Mode: 0o644, ModTime: 19, Xattrs: map[string][]byte{"user.a": []byte("1"), "user.empty": {}}},
		"a/b/c/deep":       File([]byte("deep"), 0o600, -1000), // before 1970
		"a/b/c/d/e/future": File([]byte("future"), 0o600, 5000000000),
	} {
		if err := want.Add(p, n, 0o755, 20); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 { // what only root can make
		for p, n := range map[string]*Node{
			"dev/null": {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, DevMajor: 1, DevMinor: 3, ModTime: 21},
			"dev/big":  {Mode: fs.ModeDevice | 0o660, DevMajor: 259, DevMinor: 300000, GID: 6, ModTime: 22},
			"home/u":   {Mode: fs.ModeDir | 0o700, UID: 100000, GID: 4000000000, ModTime: 23},
			"bin/ping": {Mode: 0o755, ModTime: 24, Xattrs: map[string][]byte{"security.capability": {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
				"trusted.overlay.opaque": []byte("y")}},
			"owned": {Mode: fs.ModeSymlink | 0o777, Target: "x", UID: 7, GID: 8, ModTime: 25},
		} {
			if err := want.Add(p, n, 0o755, 20); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		t.Log("not root: no devices, owners, trusted.* or security.* xattrs")
	}
	dir := filepath.Join(t.TempDir(), "src")
	materialize(t, dir, want)

	got, err := DirSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Compare(want, got, DiffOptions{}); err != nil {
		t.Fatalf("DirSource reads the directory as:\n%v", err)
	}
	// Through a symlink to it, the same.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if got, err = DirSource(link); err != nil || Compare(want, got, DiffOptions{}) != nil {
		t.Errorf("DirSource through a symlink: %v", err)
	}

	// Pruned: a directory is kept empty, anything else left out.
	got, err = DirSourceWith(dir, DirOptions{Prune: func(rel string) bool { return rel == "/a/b" || rel == "/etc/hosts" }})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Lookup(want, "a/b")
	b.Children = nil
	etc := want.Child("etc")
	etc.Children = slices.DeleteFunc(etc.Children, func(n *Node) bool { return n.Name == "hosts" })
	if err := Compare(want, got, DiffOptions{}); err != nil {
		t.Errorf("pruned:\n%v", err)
	}
	if _, err := DirSource(filepath.Join(dir, "etc/hosts")); err == nil {
		t.Error("DirSource of a file")
	}
}
