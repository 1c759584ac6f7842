package fstree

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// ReadFile reads a regular file of the tree, following symlinks (relative
// and absolute, within the tree).
func ReadFile(root *Node, p string) ([]byte, error) {
	n, err := Lookup(root, p)
	if err != nil {
		return nil, err
	}
	if !n.Mode.IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return Content(n)
}

// Content reads a regular file node's content (nothing when it has no
// Open, an empty file).
func Content(n *Node) ([]byte, error) {
	if n.Open == nil {
		return nil, nil
	}
	rc, err := n.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// notFound is the error for a path the tree lacks; it is fs.ErrNotExist.
type notFound string

func (e notFound) Error() string      { return string(e) + ": no such file" }
func (notFound) Is(target error) bool { return target == fs.ErrNotExist }

// Lookup finds the node at p, following symlinks as ReadFile does: a
// link, relative or absolute, resolves inside the tree ("/" and ".." stop
// at its root), as it does once the tree is an image's root.
func Lookup(root *Node, p string) (*Node, error) { return lookup(root, p, 0) }

func lookup(root *Node, p string, depth int) (*Node, error) {
	if depth > 16 {
		return nil, fmt.Errorf("%s: too many levels of symbolic links", p)
	}
	cur, curPath := root, "/"
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	for i, part := range parts {
		if part == "" {
			continue
		}
		var next *Node
		for _, c := range cur.Children {
			if c.Name == part {
				next = c
				break
			}
		}
		if next == nil {
			return nil, notFound(path.Join(curPath, part))
		}
		if next.Mode&os.ModeSymlink != 0 {
			target := next.Target
			if !path.IsAbs(target) {
				target = path.Join(curPath, target)
			}
			rest := strings.Join(parts[i+1:], "/")
			return lookup(root, path.Join(target, rest), depth+1)
		}
		cur, curPath = next, path.Join(curPath, part)
	}
	return cur, nil
}
