package rootfs

import (
	"fmt"
	"path/filepath"

	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/internal/mounttab"
)

// pseudoDirs are directories of a running system whose contents are never
// part of an image: kernel and device file systems, run-time state,
// temporary files, and /host, where upgrade containers see the node's
// own root (with its secrets). They stay in the tree as empty mount
// points.
var pseudoDirs = []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/host"}

// openDir reads a root file system from a directory, which may be a
// running system's "/" (an upgrade from inside a container, say): the
// contents of pseudoDirs are left out, and so is everything mounted below
// dir (a mounted directory is kept empty, a bind-mounted file left out),
// so that the tree is the file system at dir alone, never the host's or
// the container runtime's files mounted into it.
func openDir(dir string) (*Tree, error) {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("source dir:%s: %w", dir, err)
	}
	table, err := mounttab.Read(mounttab.Path)
	if err != nil {
		return nil, fmt.Errorf("source dir:%s: %w", dir, err)
	}
	mounts := mounttab.Below(table, resolved)
	root, err := fstree.DirSourceWith(resolved, fstree.DirOptions{Prune: func(rel string) bool {
		for _, p := range pseudoDirs {
			if rel == p {
				return true
			}
		}
		return mounts[rel]
	}})
	if err != nil {
		return nil, fmt.Errorf("source dir:%s: %w", dir, err)
	}
	return &Tree{Root: root}, nil
}
