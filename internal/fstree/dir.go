package fstree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// DirSource builds a Node tree from the directory at path, as mksquashfs
// would read it: lstat metadata (mode, numeric uid/gid, mtime, device
// numbers), symlink targets, xattrs of every namespace the kernel reports
// (read with llistxattr/lgetxattr, so symlinks' own xattrs), and hardlinks
// detected by (device, inode) among non-directories. Symlinks are not
// followed, except path itself. File content is read lazily by Write
// through Node.Open.
func DirSource(path string) (*Node, error) {
	return DirSourceWith(path, DirOptions{})
}

// DirOptions tune DirSource.
type DirOptions struct {
	// Prune, when it returns true for a path relative to the source
	// ("/proc", "/etc/hosts"), leaves out what is below it: a directory
	// is kept empty (a mount point the image must still have), anything
	// else is left out.
	Prune func(rel string) bool
}

// DirSourceWith is DirSource with options.
func DirSourceWith(path string, o DirOptions) (*Node, error) {
	d := &dirReader{links: map[devIno]uint64{}, prune: o.Prune}
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		path = resolved
	}
	d.top = path
	root, err := d.node(path, "")
	if err != nil {
		return nil, err
	}
	if !root.Mode.IsDir() {
		return nil, fmt.Errorf("fstree: %s is not a directory", path)
	}
	return root, nil
}

type devIno struct{ dev, ino uint64 }

type dirReader struct {
	top    string // the source directory
	prune  func(rel string) bool
	links  map[devIno]uint64
	nextID uint64
	buf    []byte // reused xattr name/value buffer
}

func (d *dirReader) node(path, name string) (*Node, error) {
	pruned := false
	if d.prune != nil && path != d.top {
		pruned = d.prune(strings.TrimPrefix(path, strings.TrimSuffix(d.top, "/")))
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, fmt.Errorf("fstree: %w", &os.PathError{Op: "lstat", Path: path, Err: err})
	}
	n := &Node{
		Name:    name,
		Mode:    modeFromUnix(st.Mode),
		UID:     st.Uid,
		GID:     st.Gid,
		ModTime: st.Mtim.Sec,
	}
	xattrs, err := d.xattrs(path)
	if err != nil {
		return nil, err
	}
	n.Xattrs = xattrs

	typ := st.Mode & unix.S_IFMT
	if pruned {
		if typ != unix.S_IFDIR {
			return nil, nil
		}
		return n, nil
	}
	if typ != unix.S_IFDIR && st.Nlink > 1 {
		key := devIno{uint64(st.Dev), st.Ino}
		id, ok := d.links[key]
		if !ok {
			d.nextID++
			id = d.nextID
			d.links[key] = id
		}
		n.LinkID = id
	}

	switch typ {
	case unix.S_IFREG:
		n.Size = st.Size
		n.Open = func() (io.ReadCloser, error) { return os.Open(path) }
	case unix.S_IFLNK:
		target, err := os.Readlink(path)
		if err != nil {
			return nil, fmt.Errorf("fstree: %w", err)
		}
		n.Target = target
	case unix.S_IFCHR, unix.S_IFBLK:
		n.DevMajor = unix.Major(uint64(st.Rdev))
		n.DevMinor = unix.Minor(uint64(st.Rdev))
	case unix.S_IFDIR:
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("fstree: %w", err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("fstree: reading directory %s: %w", path, err)
		}
		// Sorted so that hardlink ids (and so error messages) do not
		// depend on readdir order; Write sorts again regardless.
		sort.Strings(names)
		n.Children = make([]*Node, 0, len(names))
		for _, c := range names {
			child, err := d.node(filepath.Join(path, c), c)
			if err != nil {
				return nil, err
			}
			if child != nil { // nil: pruned
				n.Children = append(n.Children, child)
			}
		}
	}
	return n, nil
}

// xattrs reads all extended attributes of path without following symlinks.
// A file system without xattr support yields none rather than an error.
func (d *dirReader) xattrs(path string) (map[string][]byte, error) {
	var names []string
	for attempt := 0; ; attempt++ {
		size, err := unix.Llistxattr(path, nil)
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("fstree: %w", &os.PathError{Op: "llistxattr", Path: path, Err: err})
		}
		if size == 0 {
			return nil, nil
		}
		if len(d.buf) < size {
			d.buf = make([]byte, size*2)
		}
		n, err := unix.Llistxattr(path, d.buf[:size])
		if errors.Is(err, unix.ERANGE) && attempt < 8 { // the list grew in between: ask again
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fstree: %w", &os.PathError{Op: "llistxattr", Path: path, Err: err})
		}
		names = strings.Split(strings.TrimRight(string(d.buf[:n]), "\x00"), "\x00")
		break
	}
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		if name == "" {
			continue
		}
		val, err := d.getxattr(path, name)
		if errors.Is(err, unix.ENODATA) { // removed in between
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fstree: %w", &os.PathError{Op: "lgetxattr " + name, Path: path, Err: err})
		}
		out[name] = val
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func (d *dirReader) getxattr(path, name string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		size, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		if size == 0 {
			return []byte{}, nil
		}
		if len(d.buf) < size {
			d.buf = make([]byte, size*2)
		}
		n, err := unix.Lgetxattr(path, name, d.buf[:size])
		if errors.Is(err, unix.ERANGE) && attempt < 8 { // the value grew in between
			continue
		}
		if err != nil {
			return nil, err
		}
		return append([]byte(nil), d.buf[:n]...), nil
	}
}

// modeFromUnix converts a st_mode to an fs.FileMode (type, permission,
// setuid/setgid/sticky bits).
func modeFromUnix(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
