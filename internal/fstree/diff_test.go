package fstree

import (
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

// sample is a tree with every kind of entry, built fresh for each case.
func sample() *Node {
	link := func(name string, id uint64) *Node {
		n := File([]byte("shared"), 0o644, 5)
		n.Name, n.LinkID = name, id
		return n
	}
	root := Dir(0o755, 1)
	for p, n := range map[string]*Node{
		"etc/hosts":    File([]byte("127.0.0.1 localhost\n"), 0o644, 2),
		"etc/empty":    File(nil, 0o600, 2),
		"bin/sh":       {Mode: fs.ModeSymlink | 0o777, Target: "bash", ModTime: 3},
		"dev/null":     {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, DevMajor: 1, DevMinor: 3},
		"run/fifo":     {Mode: fs.ModeNamedPipe | 0o600, UID: 1000, GID: 100},
		"usr/bin/ping": {Mode: fs.ModeSetuid | 0o755, Xattrs: map[string][]byte{"security.capability": {1, 2}, "user.x": nil}},
		"hl/a":         link("", 7),
		"hl/b":         link("", 7),
		"other/c":      link("", 7),
		"single":       link("", 9), // a LinkID of its own: not hardlinked
	} {
		if err := root.Add(p, n, 0o755, 1); err != nil {
			panic(err)
		}
	}
	return root
}

func TestDiffEqual(t *testing.T) {
	a, b := sample(), sample()
	slices.Reverse(b.Children) // order does not matter
	for _, c := range b.Children {
		if c.Name == "hl" {
			for _, l := range c.Children {
				l.LinkID = 42 // nor do the LinkIDs themselves
			}
			b.Child("other").Children[0].LinkID = 42
		}
	}
	if d := Diff(a, b, DiffOptions{}); len(d) != 0 {
		t.Errorf("equal trees differ:\n%s", strings.Join(d, "\n"))
	}
	if err := Compare(a, b, DiffOptions{}); err != nil {
		t.Error(err)
	}
}

func TestDiff(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Node)
		opt  DiffOptions
		want []string // nil: no difference
	}{
		"perm": {edit: func(r *Node) { r.Child("etc").Mode = fs.ModeDir | 0o700 },
			want: []string{"/etc: mode drwx------, want drwxr-xr-x"}},
		"setuid lost": {edit: func(r *Node) { must(Lookup(r, "usr/bin/ping")).Mode = 0o755 },
			want: []string{"/usr/bin/ping: mode -rwxr-xr-x, want urwxr-xr-x"}},
		"type": {edit: func(r *Node) {
			*must(Lookup(r, "etc/hosts")) = Node{Name: "hosts", Mode: fs.ModeDir | 0o644, ModTime: 2}
		},
			want: []string{"/etc/hosts: mode drw-r--r--, want -rw-r--r--"}},
		"owner": {edit: func(r *Node) { must(Lookup(r, "run/fifo")).GID = 0 },
			want: []string{"/run/fifo: owner 1000:0, want 1000:100"}},
		"owner ignored": {edit: func(r *Node) { must(Lookup(r, "run/fifo")).UID = 0 }, opt: DiffOptions{IgnoreOwners: true}},
		"time": {edit: func(r *Node) { r.ModTime = 9 },
			want: []string{"/: mtime 9, want 1"}},
		"times ignored": {edit: func(r *Node) { r.ModTime = 9 }, opt: DiffOptions{IgnoreTimes: true}},
		"symlink time": {edit: func(r *Node) { must(r.Mkdir("bin", 0, 0)).Children[0].ModTime = 0 },
			want: []string{"/bin/sh: mtime 0, want 3"}},
		"symlink time ignored": {edit: func(r *Node) { must(r.Mkdir("bin", 0, 0)).Children[0].ModTime = 0 }, opt: DiffOptions{IgnoreSymlinkTimes: true}},
		"size": {edit: func(r *Node) { h := must(Lookup(r, "etc/hosts")); *h = *File([]byte("x"), 0o644, 2); h.Name = "hosts" },
			want: []string{"/etc/hosts: size 1, want 20"}},
		"content": {edit: func(r *Node) { must(Lookup(r, "etc/hosts")).Open = BytesOpener([]byte("127.0.0.2 localhost\n")) },
			want: []string{"/etc/hosts: content differs at byte 8"}},
		"content longer than size": {edit: func(r *Node) { must(Lookup(r, "etc/hosts")).Open = BytesOpener([]byte("127.0.0.1 localhost\n!")) },
			want: []string{"/etc/hosts: content differs at byte 20"}},
		"unreadable": {edit: func(r *Node) {
			must(Lookup(r, "etc/hosts")).Open = func() (io.ReadCloser, error) { return nil, fs.ErrPermission }
		}, want: []string{"/etc/hosts: opening read back content: permission denied"}},
		"target": {edit: func(r *Node) { must(r.Mkdir("bin", 0, 0)).Children[0].Target = "dash" },
			want: []string{`/bin/sh: target "dash", want "bash"`}},
		"device": {edit: func(r *Node) { must(Lookup(r, "dev/null")).DevMinor = 5 },
			want: []string{"/dev/null: device 1:5, want 1:3"}},
		"xattr": {edit: func(r *Node) { must(Lookup(r, "usr/bin/ping")).Xattrs["user.x"] = []byte("y") },
			want: []string{`/usr/bin/ping: xattrs ["security.capability=0102" "user.x=79"], want ["security.capability=0102" "user.x="]`}},
		"xattrs ignored": {edit: func(r *Node) { must(Lookup(r, "usr/bin/ping")).Xattrs = nil }, opt: DiffOptions{IgnoreXattrs: true}},
		"xattr namespace not kept": {edit: func(r *Node) { delete(must(Lookup(r, "usr/bin/ping")).Xattrs, "user.x") },
			opt: DiffOptions{Xattr: func(name string) bool { return strings.HasPrefix(name, "security.") }}},
		"missing and unexpected": {edit: func(r *Node) {
			etc := r.Child("etc")
			etc.Children = slices.DeleteFunc(etc.Children, func(n *Node) bool { return n.Name == "empty" })
			must(0, etc.Add("new", File(nil, 0o644, 2), 0, 0))
		}, want: []string{"/etc/empty: missing", "/etc/new: unexpected entry"}},
		"hardlink broken": {edit: func(r *Node) { must(Lookup(r, "other/c")).LinkID = 0 },
			want: []string{"hardlinks /hl/a=/hl/b, want /hl/a=/hl/b=/other/c"}},
		"hardlink added": {edit: func(r *Node) { must(Lookup(r, "single")).LinkID = 7 },
			want: []string{"hardlinks /hl/a=/hl/b=/other/c=/single, want /hl/a=/hl/b=/other/c"}},
		"hardlink lost": {edit: func(r *Node) {
			for _, p := range []string{"hl/a", "hl/b", "other/c"} {
				must(Lookup(r, p)).LinkID = 0
			}
		}, want: []string{"hardlinks (none), want /hl/a=/hl/b=/other/c"}},
		"hardlinks ignored": {edit: func(r *Node) { must(Lookup(r, "other/c")).LinkID = 0 }, opt: DiffOptions{IgnoreHardlinks: true}},
	} {
		t.Run(name, func(t *testing.T) {
			got := sample()
			tc.edit(got)
			d := Diff(sample(), got, tc.opt)
			if strings.Join(d, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(d, "\n"), strings.Join(tc.want, "\n"))
			}
			if err := Compare(sample(), got, tc.opt); (err == nil) != (tc.want == nil) {
				t.Errorf("Compare: %v", err)
			}
		})
	}
}

func TestCompareShowsTheFirstDifferences(t *testing.T) {
	want, got := Dir(0o755, 0), Dir(0o755, 0)
	for i := range 25 {
		must(0, got.Add(strings.Repeat("x", i+1), File(nil, 0o644, 0), 0, 0))
	}
	err := Compare(want, got, DiffOptions{})
	if lines := strings.Split(err.Error(), "\n"); len(lines) != 21 || lines[0] != "/x: unexpected entry" || lines[20] != "... and 5 more" {
		t.Errorf("Compare: %v", err)
	}
}

// must returns v, panicking on err: test trees are built correctly.
func must[T any](v T, err ...error) T {
	if len(err) > 0 && err[0] != nil {
		panic(err[0])
	}
	return v
}
