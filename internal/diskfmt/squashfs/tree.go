package squashfs

import (
	"fmt"
	"io/fs"
	"math"

	"github.com/kairos-io/kairos/internal/fstree"
)

// kind is an inode's file type, numbered as squashfs' basic inode types
// (squashfs_fs.h SQUASHFS_DIR_TYPE ... SQUASHFS_SOCKET_TYPE). Directory
// entries always carry the basic type, even for extended inodes.
type kind uint16

const (
	kindDir     kind = 1
	kindFile    kind = 2
	kindSymlink kind = 3
	kindBlock   kind = 4
	kindChar    kind = 5
	kindFIFO    kind = 6
	kindSocket  kind = 7

	// extendedOffset turns a basic type into its extended one
	// (SQUASHFS_LDIR_TYPE = 8 ... SQUASHFS_LSOCKET_TYPE = 14).
	extendedOffset = 7
)

const (
	noFragment = 0xFFFFFFFF // SQUASHFS_INVALID_FRAG
	noXattr    = 0xFFFFFFFF // SQUASHFS_INVALID_XATTR
	maxNameLen = 256        // SQUASHFS_NAME_LEN
	maxTarget  = 4095       // PATH_MAX - 1: the kernel will not read longer links
)

// inode is the writer's view of one inode: a fstree.Node (or a hardlink group of
// Nodes) with everything the on-disk structures need.
type inode struct {
	node    *fstree.Node
	path    string // first path, for error messages
	kind    kind
	number  uint32 // 1..inodes, in the order inodes are written
	nlink   uint32
	mode    uint16 // permission, setuid/setgid/sticky bits (SQUASHFS_MODE)
	uid     uint16 // index into the id table
	gid     uint16
	mtime   uint32
	xattrID uint32
	rdev    uint32

	ref     uint64 // inode table reference, once written
	written bool

	entries []dirEntry // directories: sorted by name
	parent  uint32     // directories: parent's inode number

	file *fileData // regular files
}

type dirEntry struct {
	name string
	ino  *inode
}

// fileData is a regular file's data layout, filled by the data pipeline.
type fileData struct {
	size       int64
	start      uint64   // absolute offset of the first block
	sizes      []uint32 // on-disk size of every full block (bit 24: stored raw; 0: sparse)
	sparse     uint64   // bytes in sparse blocks
	fragIndex  uint32
	fragOffset uint32
}

// tree is the validated, numbered input.
type tree struct {
	root   *inode
	inodes []*inode // by number - 1
	files  []*inode // regular files with content, in data layout order
	ids    *idTable
	xattrs *xattrTable
	stats  Stats
}

// buildTree validates the fstree.Node tree, resolves hardlinks, sorts directories,
// numbers the inodes, and collects ids and xattrs. Everything it decides
// depends only on the tree, never on map iteration or scheduling order.
func buildTree(root *fstree.Node) (*tree, error) {
	if root == nil {
		return nil, fmt.Errorf("squashfs: nil root")
	}
	if !root.Mode.IsDir() {
		return nil, fmt.Errorf("squashfs: root is not a directory (mode %v)", root.Mode)
	}
	b := &treeBuilder{t: &tree{ids: newIDTable(), xattrs: newXattrTable()}, links: map[uint64]*inode{}}
	r, err := b.visit(root, "/")
	if err != nil {
		return nil, err
	}
	t := b.t
	t.root = r
	// Numbering follows the order inodes are written (writeTables):
	// post-order, a directory's subdirectories first, then its other
	// entries, then the directory itself, so the root is last (as with
	// mksquashfs) and the entries of one directory have consecutive
	// numbers, which keeps directory headers few.
	var number func(d *inode, parent uint32)
	number = func(d *inode, parent uint32) {
		for _, e := range d.entries {
			if e.ino.kind == kindDir {
				number(e.ino, 0) // parent patched below
			}
		}
		for _, e := range d.entries {
			if e.ino.kind != kindDir && e.ino.number == 0 {
				t.inodes = append(t.inodes, e.ino)
				e.ino.number = uint32(len(t.inodes))
			}
		}
		t.inodes = append(t.inodes, d)
		d.number = uint32(len(t.inodes))
		for _, e := range d.entries {
			if e.ino.kind == kindDir {
				e.ino.parent = d.number
			}
		}
	}
	number(r, 0)
	if len(t.inodes) > math.MaxUint32-1 {
		return nil, fmt.Errorf("squashfs: too many inodes (%d)", len(t.inodes))
	}
	// The root's ".." points one past the last inode, as mksquashfs does.
	r.parent = uint32(len(t.inodes)) + 1

	// Ids and xattr sets are indexed in inode number order.
	for _, ino := range t.inodes {
		n := ino.node
		var err error
		if ino.uid, err = t.ids.index(n.UID); err != nil {
			return nil, err
		}
		if ino.gid, err = t.ids.index(n.GID); err != nil {
			return nil, err
		}
		id, skipped, err := t.xattrs.add(n.Xattrs)
		if err != nil {
			return nil, fmt.Errorf("squashfs: %s: %w", ino.path, err)
		}
		ino.xattrID = id
		t.stats.SkippedXattrs += skipped
	}
	t.stats.Inodes = len(t.inodes)
	t.stats.IDs = len(t.ids.ids)
	t.stats.XattrIDs = len(t.xattrs.ids)
	return t, nil
}

type treeBuilder struct {
	t     *tree
	links map[uint64]*inode
}

// visit converts n (at path p) and its subtree, in sorted pre-order, which
// is also the order file data is laid out in: files of one directory sit
// together, which helps fragment blocks compress.
func (b *treeBuilder) visit(n *fstree.Node, p string) (*inode, error) {
	k, err := nodeKind(n.Mode)
	if err != nil {
		return nil, fmt.Errorf("squashfs: %s: %w", p, err)
	}
	if n.LinkID != 0 {
		if k == kindDir {
			return nil, fmt.Errorf("squashfs: %s: directories cannot be hardlinked (LinkID %d)", p, n.LinkID)
		}
		if first, ok := b.links[n.LinkID]; ok {
			if first.kind != k {
				return nil, fmt.Errorf("squashfs: %s: hardlink to %s has a different file type", p, first.path)
			}
			first.nlink++
			b.t.stats.Hardlinks++
			return first, nil
		}
	}
	ino := &inode{node: n, path: p, kind: k, nlink: 1, xattrID: noXattr, mode: permBits(n.Mode)}
	ino.mtime, err = clampTime(n.ModTime)
	if err != nil {
		b.t.stats.ClampedTimes++
	}
	if n.LinkID != 0 {
		b.links[n.LinkID] = ino
	}
	switch k {
	case kindDir:
		b.t.stats.Dirs++
		if err := b.visitDir(ino, n, p); err != nil {
			return nil, err
		}
	case kindFile:
		b.t.stats.Files++
		if n.Size < 0 {
			return nil, fmt.Errorf("squashfs: %s: negative size %d", p, n.Size)
		}
		if n.Size > 0 && n.Open == nil {
			return nil, fmt.Errorf("squashfs: %s: regular file of %d bytes has no Open function", p, n.Size)
		}
		ino.file = &fileData{size: n.Size, fragIndex: noFragment}
		b.t.files = append(b.t.files, ino)
		b.t.stats.DataBytes += n.Size
	case kindSymlink:
		b.t.stats.Symlinks++
		if n.Target == "" || len(n.Target) > maxTarget {
			return nil, fmt.Errorf("squashfs: %s: symlink target length %d invalid (1-%d bytes)", p, len(n.Target), maxTarget)
		}
	case kindBlock, kindChar:
		b.t.stats.Devices++
		// Linux's 32-bit new_encode_dev() layout, which the kernel's
		// squashfs decodes with new_decode_dev(): 12-bit major, 20-bit minor.
		if n.DevMajor >= 1<<12 || n.DevMinor >= 1<<20 {
			return nil, fmt.Errorf("squashfs: %s: device %d:%d out of range (major < 4096, minor < 1048576)", p, n.DevMajor, n.DevMinor)
		}
		ino.rdev = n.DevMinor&0xff | n.DevMajor<<8 | (n.DevMinor&^0xff)<<12
	case kindFIFO, kindSocket:
		b.t.stats.IPC++
	}
	return ino, nil
}

func (b *treeBuilder) visitDir(ino *inode, n *fstree.Node, p string) error {
	// Bytewise order, as the kernel's lookup stops at the first larger
	// name (strcmp order).
	children, err := fstree.Sorted(n, maxNameLen)
	if err != nil {
		return fmt.Errorf("squashfs: %s: %w", p, err)
	}
	ino.entries = make([]dirEntry, 0, len(children))
	for _, c := range children {
		cp := p + c.Name
		if c.Mode.IsDir() {
			cp += "/"
		}
		child, err := b.visit(c, cp)
		if err != nil {
			return err
		}
		ino.entries = append(ino.entries, dirEntry{name: c.Name, ino: child})
		if child.kind == kindDir {
			ino.nlink++ // each subdirectory's ".."
		}
	}
	// A directory's link count is 2 + its subdirectories (mksquashfs).
	ino.nlink++
	return nil
}

func nodeKind(m fs.FileMode) (kind, error) {
	switch t := m.Type(); {
	case t == 0:
		return kindFile, nil
	case t == fs.ModeDir:
		return kindDir, nil
	case t == fs.ModeSymlink:
		return kindSymlink, nil
	case t == fs.ModeDevice:
		return kindBlock, nil
	case t == fs.ModeDevice|fs.ModeCharDevice, t == fs.ModeCharDevice:
		return kindChar, nil
	case t == fs.ModeNamedPipe:
		return kindFIFO, nil
	case t == fs.ModeSocket:
		return kindSocket, nil
	default:
		return 0, fmt.Errorf("unsupported file type in mode %v", m)
	}
}

// permBits returns the 12 low bits of a Unix st_mode (SQUASHFS_MODE):
// permissions plus setuid, setgid and sticky. The type is implied by the
// inode type.
func permBits(m fs.FileMode) uint16 {
	p := uint16(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

// clampTime fits t into squashfs' unsigned 32-bit seconds; the error
// reports that it had to clamp.
func clampTime(t int64) (uint32, error) {
	switch {
	case t < 0:
		return 0, fmt.Errorf("time %d before 1970", t)
	case t > math.MaxUint32:
		return math.MaxUint32, fmt.Errorf("time %d after 2106", t)
	}
	return uint32(t), nil
}
