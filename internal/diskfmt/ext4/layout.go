package ext4

import (
	"errors"
	"fmt"
)

// Fixed format parameters (see doc.go for why these values).
const (
	blockSize      = 4096
	logBlockSize   = 2 // s_log_block_size: block size is 1024 << 2
	sectorsPerBlk  = blockSize / 512
	blocksPerGroup = 8 * blockSize // one bitmap block covers one group
	inodeSize      = 256
	inodesPerBlock = blockSize / inodeSize
	descSize       = 32 // no 64bit feature: the original 32-byte descriptors
	descsPerBlock  = blockSize / descSize

	// maxInodesPerGroup: the inode bitmap is one block too.
	maxInodesPerGroup = 8 * blockSize

	// maxBlocks: without the 64bit feature block numbers are 32-bit.
	maxBlocks = 1<<32 - 1
)

// Reserved inode numbers (Documentation/filesystems/ext4/special_inodes.rst).
const (
	rootIno      = 2
	journalIno   = 8
	firstIno     = 11 // first inode not reserved: lost+found, as mke2fs does
	lostFoundIno = firstIno
)

var errNoSpace = errors.New("not enough space")

// geometry is where every block group's metadata lives. Without flex_bg each
// group starts with its own metadata: a superblock and group descriptor
// table copy when the group carries one (sparse_super), then its block
// bitmap, inode bitmap and inode table; the rest of the group holds data.
type geometry struct {
	blocks         uint32 // s_blocks_count; first_data_block is 0 with 4 KiB blocks
	groups         uint32
	inodesPerGroup uint32
	itableBlocks   uint32 // inode table blocks per group
	gdtBlocks      uint32 // group descriptor table blocks (each copy)
}

// newGeometry lays out a file system of at most blocks blocks with at least
// inodes inodes. A last group too small to hold its own metadata and a
// data block is left out, so the file system may end up a little smaller
// than asked (as mke2fs does).
func newGeometry(blocks uint64, inodes uint64) (geometry, error) {
	if blocks > maxBlocks {
		blocks = maxBlocks
	}
	var g geometry
	for {
		if blocks == 0 {
			return g, errNoSpace
		}
		g.blocks = uint32(blocks)
		g.groups = uint32((blocks + blocksPerGroup - 1) / blocksPerGroup)
		ipg := (inodes + uint64(g.groups) - 1) / uint64(g.groups)
		ipg = (ipg + inodesPerBlock - 1) / inodesPerBlock * inodesPerBlock
		if ipg < inodesPerBlock {
			ipg = inodesPerBlock
		}
		if ipg > maxInodesPerGroup || ipg*uint64(g.groups) > 1<<32-1 {
			// More groups would be needed for that many inodes (or
			// s_inodes_count would overflow).
			return g, errNoSpace
		}
		g.inodesPerGroup = uint32(ipg)
		g.itableBlocks = g.inodesPerGroup / inodesPerBlock
		g.gdtBlocks = (g.groups + descsPerBlock - 1) / descsPerBlock
		last := g.groups - 1
		if g.groupBlocks(last) > g.overhead(last) {
			return g, nil
		}
		if last == 0 {
			return g, errNoSpace
		}
		blocks = uint64(last) * blocksPerGroup
	}
}

func (g *geometry) inodes() uint32 { return g.inodesPerGroup * g.groups }

func (g *geometry) groupStart(i uint32) uint32 { return i * blocksPerGroup }

// groupBlocks is the size of group i: full groups except possibly the last.
func (g *geometry) groupBlocks(i uint32) uint32 {
	if i == g.groups-1 {
		return g.blocks - g.groupStart(i)
	}
	return blocksPerGroup
}

// hasSuper tells whether group i carries a superblock and descriptor table
// copy: with sparse_super only groups 0, 1 and powers of 3, 5 and 7 do.
func hasSuper(i uint32) bool {
	if i <= 1 {
		return true
	}
	for _, base := range []uint32{3, 5, 7} {
		n := base
		for n < i {
			n *= base
		}
		if n == i {
			return true
		}
	}
	return false
}

// superBlocks is the number of blocks the superblock and GDT copy take at
// the start of group i (0 when the group has none).
func (g *geometry) superBlocks(i uint32) uint32 {
	if hasSuper(i) {
		return 1 + g.gdtBlocks
	}
	return 0
}

func (g *geometry) blockBitmap(i uint32) uint32 { return g.groupStart(i) + g.superBlocks(i) }
func (g *geometry) inodeBitmap(i uint32) uint32 { return g.blockBitmap(i) + 1 }
func (g *geometry) inodeTable(i uint32) uint32  { return g.blockBitmap(i) + 2 }

// overhead is the number of metadata blocks at the start of group i.
func (g *geometry) overhead(i uint32) uint32 { return g.superBlocks(i) + 2 + g.itableBlocks }

func (g *geometry) dataStart(i uint32) uint32 { return g.groupStart(i) + g.overhead(i) }
func (g *geometry) groupEnd(i uint32) uint32  { return g.groupStart(i) + g.groupBlocks(i) }

// inodeGroup returns the group and index within it of inode number ino.
func (g *geometry) inodeGroup(ino uint32) (group, index uint32) {
	return (ino - 1) / g.inodesPerGroup, (ino - 1) % g.inodesPerGroup
}

func (g geometry) String() string {
	return fmt.Sprintf("%d blocks, %d groups, %d inodes per group", g.blocks, g.groups, g.inodesPerGroup)
}

// allocator hands out data blocks in one ascending sweep over the groups'
// data regions, so that allocation is deterministic, every object is as
// contiguous as the group layout allows, and the used blocks of every group
// form a prefix (which keeps the bitmaps trivial).
type allocator struct {
	g     *geometry
	group uint32
	next  uint32 // next free block
	end   uint32 // end of the current group's data region
}

func newAllocator(g *geometry) *allocator {
	return &allocator{g: g, next: g.dataStart(0), end: g.groupEnd(0)}
}

// take allocates n blocks and reports them as runs of consecutive blocks,
// each within one group (so never longer than an extent may be).
func (a *allocator) take(n uint32, run func(start, length uint32)) error {
	for n > 0 {
		if a.next >= a.end {
			if a.group+1 >= a.g.groups {
				return errNoSpace
			}
			a.group++
			a.next, a.end = a.g.dataStart(a.group), a.g.groupEnd(a.group)
			continue
		}
		l := min(n, a.end-a.next)
		if run != nil {
			run(a.next, l)
		}
		a.next += l
		n -= l
	}
	return nil
}

// used returns how many data blocks of group i have been handed out.
func (a *allocator) used(i uint32) uint32 {
	switch {
	case i < a.group:
		return a.g.groupEnd(i) - a.g.dataStart(i)
	case i == a.group:
		return a.next - a.g.dataStart(i)
	}
	return 0
}
