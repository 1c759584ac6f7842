package fstree

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// CheckName reports whether name can be an entry of a directory: not
// empty, not "." or "..", no "/" or NUL, and at most max bytes (each
// format's NAME_MAX; 0 means no limit).
func CheckName(name string, max int) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("invalid name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains '/' or NUL", name)
	case max > 0 && len(name) > max:
		return fmt.Errorf("name %q (%d bytes) is longer than %d bytes", name, len(name), max)
	}
	return nil
}

// SplitPath returns the components of the slash-separated path p, cleaned
// ("a//b/./c" is a, b, c; ".." stops at the root). The root is no
// components.
func SplitPath(p string) []string {
	clean := strings.Trim(path.Clean("/"+p), "/")
	if clean == "" {
		return nil
	}
	return strings.Split(clean, "/")
}

// Sorted returns d's children in bytewise name order, the order every
// writer stores them in (and the kernel's squashfs lookup relies on), so
// that an image never depends on how its tree was built. The tree is not
// modified. Nil children and duplicate or invalid names are errors.
func Sorted(d *Node, maxName int) ([]*Node, error) {
	children := slices.Clone(d.Children)
	for _, c := range children {
		if c == nil {
			return nil, fmt.Errorf("nil entry")
		}
	}
	slices.SortStableFunc(children, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
	for i, c := range children {
		if err := CheckName(c.Name, maxName); err != nil {
			return nil, err
		}
		if i > 0 && children[i-1].Name == c.Name {
			return nil, fmt.Errorf("duplicate entry %q", c.Name)
		}
	}
	return children, nil
}

// Child returns d's entry called name, or nil.
func (d *Node) Child(name string) *Node {
	for _, c := range d.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Add puts n at the slash-separated path p below d, naming it after p's
// last component and making the missing directories on the way with
// dirMode and mtime (mkdir -p). An existing entry of that name is an error,
// as is a non-directory on the way.
func (d *Node) Add(p string, n *Node, dirMode fs.FileMode, mtime int64) error {
	parts := SplitPath(p)
	if len(parts) == 0 {
		return fmt.Errorf("add %q: the path names the root", p)
	}
	dir, err := d.Mkdir(path.Join(parts[:len(parts)-1]...), dirMode, mtime)
	if err != nil {
		return fmt.Errorf("add %s: %w", p, err)
	}
	name := parts[len(parts)-1]
	if dir.Child(name) != nil {
		return fmt.Errorf("add %s: %s already exists", p, name)
	}
	n.Name = name
	dir.Children = append(dir.Children, n)
	return nil
}

// Mkdir returns the directory at the slash-separated path p below d,
// making it and its parents with dirMode and mtime where missing.
func (d *Node) Mkdir(p string, dirMode fs.FileMode, mtime int64) (*Node, error) {
	cur := d
	for i, name := range SplitPath(p) {
		next := cur.Child(name)
		if next == nil {
			next = &Node{Name: name, Mode: fs.ModeDir | dirMode.Perm(), ModTime: mtime}
			cur.Children = append(cur.Children, next)
		} else if !next.Mode.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", path.Join(SplitPath(p)[:i+1]...))
		}
		cur = next
	}
	return cur, nil
}
