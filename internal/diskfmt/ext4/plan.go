package ext4

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/kairos-io/kairos/internal/fstree"
)

type kind uint8

const (
	kindFile kind = iota
	kindDir
	kindSymlink
	kindChar
	kindBlock
	kindFifo
	kindSocket
)

// fastSymlinkMax: a target shorter than i_block (60 bytes, leaving room
// for the NUL the kernel keeps) is stored in the inode itself.
const fastSymlinkMax = 59

// inode is one inode of the file system being planned.
type inode struct {
	ino      uint32
	seq      int // position in tree.order, the index of its placement
	kind     kind
	path     string       // for error messages
	node     *fstree.Node // content source of a regular file
	perm     uint16       // permission, setuid, setgid and sticky bits
	uid, gid uint32
	mtime    int64
	size     uint64 // content bytes; directories: blocks * blockSize
	links    uint32
	target   string
	major    uint32
	minor    uint32
	xattrs   xattrs
	blocks   uint32 // data blocks: content, directory blocks, slow symlink

	// Directories only.
	parent  uint32
	entries []dirent // sorted by name
}

func (in *inode) mode() uint16 {
	types := [...]uint16{kindFile: sIFREG, kindDir: sIFDIR, kindSymlink: sIFLNK,
		kindChar: sIFCHR, kindBlock: sIFBLK, kindFifo: sIFIFO, kindSocket: sIFSOCK}
	return types[in.kind] | in.perm
}

func (in *inode) fileType() uint8 {
	types := [...]uint8{kindFile: ftRegular, kindDir: ftDir, kindSymlink: ftSymlink,
		kindChar: ftChar, kindBlock: ftBlock, kindFifo: ftFifo, kindSocket: ftSocket}
	return types[in.kind]
}

// usesExtents tells whether i_block holds an extent tree: regular files
// and directories always (even empty ones, as the kernel creates them),
// symlinks only when the target is in a block.
func (in *inode) usesExtents() bool {
	return in.kind == kindFile || in.kind == kindDir || (in.kind == kindSymlink && in.blocks > 0)
}

// tree is the file system's content, numbered: everything that does not
// depend on the file system size.
type tree struct {
	order        []*inode // depth first, entries by name: inode and allocation order
	maxIno       uint32
	dataBlocks   uint64 // data and attribute blocks, without extent tree blocks
	contentBytes int64  // regular file content, each inode once
	links        map[uint64]*inode
	modTime      int64
}

// newTree numbers root's entries depth first, children sorted by name
// (bytewise), from inode 12 on: root is inode 2 and lost+found inode 11,
// taken from the tree when root has one, else created.
func newTree(root *fstree.Node, modTime int64) (*tree, error) {
	t := &tree{maxIno: firstIno, links: map[uint64]*inode{}, modTime: modTime}
	if root == nil {
		root = &fstree.Node{Mode: fs.ModeDir | 0o755, ModTime: modTime}
	}
	if !root.Mode.IsDir() {
		return nil, fmt.Errorf("root is not a directory (mode %v)", root.Mode)
	}
	if _, err := t.visit(root, "/", rootIno, rootIno); err != nil {
		return nil, err
	}
	return t, nil
}

// visit adds n (reached as path) and everything under it; ino is its
// number if fixed (root, lost+found), else 0. It returns n's inode.
func (t *tree) visit(n *fstree.Node, path string, ino, parent uint32) (*inode, error) {
	if n.LinkID != 0 && !n.Mode.IsDir() {
		if in, ok := t.links[n.LinkID]; ok {
			if in.links >= maxLinks {
				return nil, fmt.Errorf("%s: more than %d hardlinks", path, maxLinks)
			}
			in.links++
			return in, nil
		}
	}
	in, err := newInode(n, path)
	if err != nil {
		return nil, err
	}
	if ino == 0 {
		t.maxIno++
		ino = t.maxIno
	}
	in.ino = ino
	in.seq = len(t.order)
	t.order = append(t.order, in)
	if n.LinkID != 0 && !n.Mode.IsDir() {
		t.links[n.LinkID] = in
	}
	if in.kind == kindFile {
		t.contentBytes += n.Size
	}
	if in.kind == kindDir {
		in.parent = parent
		if err := t.visitChildren(in, n); err != nil {
			return nil, err
		}
		in.blocks = dirBlockCount(in.entries)
		in.size = uint64(in.blocks) * blockSize
	}
	t.dataBlocks += uint64(in.blocks)
	if len(in.xattrs.list) > 0 && !in.xattrs.inInode {
		t.dataBlocks++
	}
	return in, nil
}

func (t *tree) visitChildren(in *inode, n *fstree.Node) error {
	children, err := fstree.Sorted(n, maxNameLen)
	if err != nil {
		return fmt.Errorf("%s: %w", in.path, err)
	}
	if in.ino == rootIno && n.Child("lost+found") == nil {
		lf := &fstree.Node{Name: "lost+found", Mode: fs.ModeDir | 0o700, ModTime: t.modTime}
		i, _ := slices.BinarySearchFunc(children, lf.Name, func(c *fstree.Node, name string) int { return strings.Compare(c.Name, name) })
		children = slices.Insert(children, i, lf)
	}
	subdirs := 0
	for _, c := range children {
		path := strings.TrimSuffix(in.path, "/") + "/" + c.Name
		var ino uint32
		if in.ino == rootIno && c.Name == "lost+found" {
			if !c.Mode.IsDir() {
				return fmt.Errorf("%s: must be a directory (e2fsck recreates it otherwise)", path)
			}
			ino = lostFoundIno
		}
		child, err := t.visit(c, path, ino, in.ino)
		if err != nil {
			return err
		}
		if child.kind == kindDir {
			subdirs++
		}
		in.entries = append(in.entries, dirent{name: c.Name, ino: child.ino, ftype: child.fileType()})
	}
	in.links = 2 + uint32(subdirs)
	if in.links > maxLinks {
		in.links = 1 // dir_nlink: "too many to count"
	}
	return nil
}

// newInode converts a node's metadata; children are added by visit.
func newInode(n *fstree.Node, path string) (*inode, error) {
	in := &inode{
		path:  path,
		node:  n,
		uid:   n.UID,
		gid:   n.GID,
		mtime: n.ModTime,
		links: 1,
		perm:  uint16(n.Mode.Perm()),
	}
	if n.Mode&fs.ModeSetuid != 0 {
		in.perm |= 0o4000
	}
	if n.Mode&fs.ModeSetgid != 0 {
		in.perm |= 0o2000
	}
	if n.Mode&fs.ModeSticky != 0 {
		in.perm |= 0o1000
	}
	switch typ := n.Mode.Type(); typ {
	case 0:
		in.kind = kindFile
		if n.Size < 0 {
			return nil, fmt.Errorf("%s: negative size %d", path, n.Size)
		}
		if n.Size > 0 && n.Open == nil {
			return nil, fmt.Errorf("%s: %d bytes but no Open function", path, n.Size)
		}
		blocks := (uint64(n.Size) + blockSize - 1) / blockSize
		if blocks > maxBlocks {
			return nil, fmt.Errorf("%s: %d bytes is larger than ext4 with 32-bit block numbers allows", path, n.Size)
		}
		in.size, in.blocks = uint64(n.Size), uint32(blocks)
	case fs.ModeDir:
		in.kind = kindDir
	case fs.ModeSymlink:
		in.kind = kindSymlink
		switch {
		case n.Target == "":
			return nil, fmt.Errorf("%s: empty symlink target", path)
		case len(n.Target) >= blockSize:
			return nil, fmt.Errorf("%s: symlink target of %d bytes (at most %d)", path, len(n.Target), blockSize-1)
		case strings.IndexByte(n.Target, 0) >= 0:
			return nil, fmt.Errorf("%s: symlink target contains NUL", path)
		}
		in.target, in.size = n.Target, uint64(len(n.Target))
		if len(n.Target) > fastSymlinkMax {
			in.blocks = 1
		}
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		in.kind = kindBlock
		if typ&fs.ModeCharDevice != 0 {
			in.kind = kindChar
		}
		if n.DevMajor >= 1<<12 || n.DevMinor >= 1<<20 {
			return nil, fmt.Errorf("%s: device %d:%d out of range (major < 4096, minor < 2^20)", path, n.DevMajor, n.DevMinor)
		}
		in.major, in.minor = n.DevMajor, n.DevMinor
	case fs.ModeNamedPipe:
		in.kind = kindFifo
	case fs.ModeSocket:
		in.kind = kindSocket
	default:
		return nil, fmt.Errorf("%s: unsupported file type %v", path, typ)
	}
	xs, err := parseXattrs(n.Xattrs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	in.xattrs = xs
	return in, nil
}

// placement is where an inode's blocks went.
type placement struct {
	extents    []extent // data, ascending logical blocks
	tree       []uint32 // extent tree blocks, leaves first
	xattrBlock uint32
}

// plan is a tree laid out on a file system of a given size.
type plan struct {
	geo           geometry
	alloc         *allocator
	journalBlocks uint32
	journal       placement
	place         []placement // by inode.seq
}

// layout places t on a file system of blocks blocks with at least inodes
// inodes and a journal of journalBlocks blocks (0 for none). With record
// false it only checks that everything fits.
func (t *tree) layout(blocks, inodes uint64, journalBlocks uint32, record bool) (*plan, error) {
	geo, err := newGeometry(blocks, max(inodes, uint64(t.maxIno)))
	if err != nil {
		return nil, err
	}
	p := &plan{geo: geo, journalBlocks: journalBlocks}
	p.alloc = newAllocator(&p.geo)
	if record {
		p.place = make([]placement, len(t.order))
	}
	var scratch placement
	if journalBlocks > 0 {
		if err := p.place1(&p.journal, journalBlocks, false, true); err != nil {
			return nil, err
		}
	}
	for _, in := range t.order {
		pl := &scratch
		if record {
			pl = &p.place[in.seq]
		}
		if err := p.place1(pl, in.blocks, len(in.xattrs.list) > 0 && !in.xattrs.inInode, record); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// place1 allocates an inode's attribute block (first, so that it sits
// before the data it describes), data blocks and extent tree blocks.
func (p *plan) place1(pl *placement, blocks uint32, xattrBlock, record bool) error {
	a := p.alloc
	if xattrBlock {
		if err := a.take(1, func(start, _ uint32) { pl.xattrBlock = start }); err != nil {
			return err
		}
	}
	var logical uint32
	n := 0
	err := a.take(blocks, func(start, length uint32) {
		if record {
			pl.extents = append(pl.extents, extent{logical: logical, start: start, length: length})
		}
		logical += length
		n++
	})
	if err != nil {
		return err
	}
	if tb := treeBlocks(n); tb > 0 {
		return a.take(uint32(tb), func(start, length uint32) {
			if record {
				for i := range length {
					pl.tree = append(pl.tree, start+i)
				}
			}
		})
	}
	return nil
}

// inodeRatio is mke2fs's default bytes-per-inode: when there is room, the
// file system gets one inode per 16 KiB, so that a data partition can be
// filled with files later.
const inodeRatio = 16384

// fit lays t out on a file system of blocks blocks, with as many inodes and
// as large a journal as the defaults ask for, or fewer when that is what
// fits: the journal halves down to its minimum, and the inodes drop to
// those the tree needs plus one per inodeRatio bytes of the space left
// free, so that a file system sized just above RequiredSize still has some
// inodes to spare.
func (t *tree) fit(blocks uint64, journal bool) (*plan, error) {
	var journals []uint32
	if journal {
		for j := journalBlocksFor(blocks); j >= minJournalBlocks; j /= 2 {
			journals = append(journals, j)
		}
	} else {
		journals = []uint32{0}
	}
	need := uint64(t.maxIno)
	ratio := blocks * blockSize / inodeRatio
	for _, j := range journals {
		if ratio > need {
			p, err := t.layout(blocks, ratio, j, true)
			if !errors.Is(err, errNoSpace) {
				return p, err
			}
		}
		p, err := t.layout(blocks, need, j, true)
		if errors.Is(err, errNoSpace) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if extra := p.freeBlocks() * blockSize / inodeRatio; extra > 0 {
			if p2, err := t.layout(blocks, need+extra, j, true); err == nil {
				return p2, nil
			}
		}
		return p, nil
	}
	return nil, errNoSpace
}

// freeBlocks is the number of blocks left unallocated.
func (p *plan) freeBlocks() uint64 {
	var free uint64
	for i := range p.geo.groups {
		free += uint64(p.geo.groupBlocks(i) - p.geo.overhead(i) - p.alloc.used(i))
	}
	return free
}

// fits is fit's answer without the plan: the smallest journal and only the
// inodes needed, which is what the least space can hold.
func (t *tree) fits(blocks uint64, journal bool) bool {
	j := uint32(0)
	if journal {
		j = minJournalBlocks
	}
	_, err := t.layout(blocks, 0, j, false)
	return err == nil
}

// requiredBlocks finds the smallest block count t fits in by bisection.
// Feasibility is monotonic except for small steps when a group or a
// descriptor block is added; bisection then still returns a count that
// fits, possibly a few blocks above the very smallest.
func (t *tree) requiredBlocks(journal bool) (uint64, error) {
	lo := t.dataBlocks // never enough: group 0 needs its metadata too
	if journal {
		lo += minJournalBlocks
	}
	hi := lo + lo/16 + 64
	for !t.fits(hi, journal) {
		if hi >= maxBlocks {
			return 0, fmt.Errorf("the tree does not fit in the largest file system with 32-bit block numbers (16 TiB)")
		}
		lo = hi
		hi = min(2*hi, maxBlocks)
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if t.fits(mid, journal) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}
