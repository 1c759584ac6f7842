package fstree

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		want string // "" = valid
	}{
		{"ok", 0, ""},
		{".hidden", 0, ""},
		{"...", 0, ""},
		{"naïve file.txt", 0, ""},
		{strings.Repeat("n", 300), 0, ""},
		{"nnnn", 4, ""},
		{"", 0, `invalid name ""`},
		{".", 0, `invalid name "."`},
		{"..", 0, `invalid name ".."`},
		{"a/b", 0, `name "a/b" contains '/' or NUL`},
		{"a\x00b", 0, `name "a\x00b" contains '/' or NUL`},
		{"nnnnn", 4, `name "nnnnn" (5 bytes) is longer than 4 bytes`},
	} {
		if err := CheckName(tc.name, tc.max); tc.want == "" && err != nil || tc.want != "" && fmt.Sprint(err) != tc.want {
			t.Errorf("CheckName(%q, %d): %v, want %q", tc.name, tc.max, err, tc.want)
		}
	}
}

func TestSplitPath(t *testing.T) {
	for p, want := range map[string]string{
		"":          "",
		"/":         "",
		".":         "",
		"a":         "a",
		"/a/b/":     "a b",
		"a//b/./c":  "a b c",
		"a/../b":    "b",
		"../../x/y": "x y",
	} {
		if got := strings.Join(SplitPath(p), " "); got != want {
			t.Errorf("SplitPath(%q) = %q, want %q", p, got, want)
		}
	}
	if SplitPath("/") != nil {
		t.Error("the root is not nil")
	}
}

func TestSorted(t *testing.T) {
	names := func(ns []*Node) string {
		var s []string
		for _, n := range ns {
			s = append(s, n.Name)
		}
		return strings.Join(s, " ")
	}
	d := Dir(0o755, 0)
	for _, n := range []string{"b", "_", "a", "B", "0", ".x", "ab", "a-"} {
		d.Children = append(d.Children, &Node{Name: n})
	}
	got, err := Sorted(d, 0)
	if err != nil || names(got) != ".x 0 B _ a a- ab b" {
		t.Errorf("Sorted: %q, %v (want bytewise order)", names(got), err)
	}
	if names(d.Children) != "b _ a B 0 .x ab a-" {
		t.Errorf("Sorted modified the tree: %s", names(d.Children))
	}
	for want, children := range map[string][]*Node{
		"nil entry":               {{Name: "a"}, nil},
		`duplicate entry "a"`:     {{Name: "a"}, {Name: "b"}, {Name: "a"}},
		`invalid name ".."`:       {{Name: ".."}},
		`name "abc" (3 bytes) is`: {{Name: "abc"}},
	} {
		if _, err := Sorted(&Node{Mode: fs.ModeDir, Children: children}, 2); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Sorted: %v, want %q", err, want)
		}
	}
}

func TestAddAndMkdir(t *testing.T) {
	root := Dir(0o755, 1)
	if err := root.Add("/etc/ssl/certs/ca.pem", File([]byte("pem"), 0o644, 2), 0o700|fs.ModeSetgid, 3); err != nil {
		t.Fatal(err)
	}
	ssl := must(Lookup(root, "etc/ssl"))
	if ssl.Name != "ssl" || ssl.Mode != fs.ModeDir|0o700 || ssl.ModTime != 3 {
		t.Errorf("made parent: %+v (want only the permission bits of dirMode)", ssl)
	}
	if got, err := ReadFile(root, "etc/ssl/certs/ca.pem"); err != nil || string(got) != "pem" {
		t.Errorf("added file: %q, %v", got, err)
	}
	// Mkdir of existing directories returns them, making only what is missing.
	etc := root.Child("etc")
	if d, err := root.Mkdir("etc//./ssl", 0o755, 9); err != nil || d != ssl {
		t.Errorf("Mkdir of an existing directory: %v, %v", d, err)
	}
	if d, err := root.Mkdir("etc/new/deeper", 0o755, 9); err != nil || d.Name != "deeper" || len(etc.Children) != 2 {
		t.Errorf("Mkdir: %+v, %v", d, err)
	}
	if d, err := root.Mkdir("", 0o755, 9); err != nil || d != root {
		t.Errorf("Mkdir of the root: %v, %v", d, err)
	}
	for p, want := range map[string]string{
		"etc/ssl/certs/ca.pem":   "add etc/ssl/certs/ca.pem: ca.pem already exists",
		"etc/ssl/certs/ca.pem/x": "add etc/ssl/certs/ca.pem/x: etc/ssl/certs/ca.pem is not a directory",
		"/":                      `add "/": the path names the root`,
	} {
		if err := root.Add(p, File(nil, 0o644, 0), 0o755, 0); fmt.Sprint(err) != want {
			t.Errorf("Add(%q): %v, want %q", p, err, want)
		}
	}
	if _, err := root.Mkdir("etc/ssl/certs/ca.pem/x", 0o755, 0); fmt.Sprint(err) != "etc/ssl/certs/ca.pem is not a directory" {
		t.Errorf("Mkdir through a file: %v", err)
	}
}

func TestLookupAndReadFile(t *testing.T) {
	root := Dir(0o755, 0)
	symlink := func(target string) *Node { return &Node{Mode: fs.ModeSymlink | 0o777, Target: target} }
	for p, n := range map[string]*Node{
		"etc/os-release":         File([]byte("ID=kairos\n"), 0o644, 0),
		"usr/lib/os-release":     File([]byte("ID=usr\n"), 0o644, 0),
		"etc/relative":           symlink("os-release"),
		"etc/up":                 symlink("../usr/lib/os-release"),
		"etc/absolute":           symlink("/usr/lib/os-release"),
		"etc/escape":             symlink("../../../../usr/lib/os-release"), // ".." stops at the root
		"lib":                    symlink("usr/lib"),                        // a link to a directory, on the way
		"etc/chain":              symlink("absolute"),
		"etc/dangling":           symlink("nowhere"),
		"etc/loop":               symlink("loop"),
		"etc/empty":              File(nil, 0o644, 0),
		"boot/vmlinuz":           symlink("vmlinuz-6.1"),
		"boot/vmlinuz-6.1":       File([]byte("kernel"), 0o644, 0),
		"usr/lib/modules/dir/.k": File(nil, 0o644, 0),
	} {
		must(0, root.Add(p, n, 0o755, 0))
	}
	for p, want := range map[string]string{
		"etc/os-release":       "ID=kairos\n",
		"/etc//./os-release":   "ID=kairos\n",
		"etc/relative":         "ID=kairos\n",
		"etc/up":               "ID=usr\n",
		"etc/absolute":         "ID=usr\n",
		"etc/escape":           "ID=usr\n",
		"etc/chain":            "ID=usr\n",
		"lib/os-release":       "ID=usr\n",
		"../lib/os-release":    "ID=usr\n",
		"boot/vmlinuz":         "kernel",
		"etc/empty":            "",
		"etc/missing":          "error: /etc/missing: no such file",
		"etc/dangling":         "error: /etc/nowhere: no such file",
		"etc/loop":             "error: /etc/loop: too many levels of symbolic links",
		"lib/modules":          "error: lib/modules is not a regular file",
		"etc/os-release/inner": "error: /etc/os-release/inner: no such file",
	} {
		data, err := ReadFile(root, p)
		got := string(data)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != want {
			t.Errorf("ReadFile(%q) = %q, want %q", p, got, want)
		}
	}
	if n, err := Lookup(root, "lib/modules/dir"); err != nil || n.Name != "dir" || !n.Mode.IsDir() {
		t.Errorf("Lookup through a symlinked directory: %+v, %v", n, err)
	}
	if n, err := Lookup(root, "/"); err != nil || n != root {
		t.Errorf("Lookup(/): %v, %v", n, err)
	}
}

func TestLookupMissingIsNotExist(t *testing.T) {
	root := &Node{Mode: fs.ModeDir | 0o755}
	if _, err := ReadFile(root, "/usr/lib/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%v is not fs.ErrNotExist", err)
	}
}
