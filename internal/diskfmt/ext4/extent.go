package ext4

import "encoding/binary"

// Extent trees (Documentation/filesystems/ext4/ifork.rst): a 12-byte header
// followed by 12-byte entries, either leaves (extents) or index entries
// pointing to a block one level down. The root lives in the inode's 60-byte
// i_block and holds four entries; every other node is a whole block.
const (
	extentMagic     = 0xF30A
	extentEntrySize = 12
	extentsInInode  = 4
	// extentsPerBlock leaves no room for the checksum tail, which only
	// metadata_csum uses; it is the kernel's ext4_ext_space_block.
	extentsPerBlock = (blockSize - extentEntrySize) / extentEntrySize

	// maxExtentLen: ee_len above 32768 marks an unwritten extent.
	maxExtentLen = 32768
)

// extent maps length blocks from logical block logical of a file to the
// physical blocks from start.
type extent struct {
	logical, start, length uint32
}

// treeBlocks is the number of blocks the extent tree of n extents needs
// besides the root in the inode: leaf blocks of up to 340 extents, then
// index blocks above them, until at most four entries remain for the root.
func treeBlocks(n int) int {
	total := 0
	for n > extentsInInode {
		n = (n + extentsPerBlock - 1) / extentsPerBlock
		total += n
	}
	return total
}

type treeEntry struct {
	first uint32 // first logical block covered
	raw   [extentEntrySize]byte
}

// buildExtentTree encodes exts (ascending, non-overlapping) as an extent
// tree whose non-root nodes are stored in blocks (len(blocks) ==
// treeBlocks(len(exts)), leaves first). It returns the inode's i_block and
// the content of each of blocks.
func buildExtentTree(exts []extent, blocks []uint32) (iblock [60]byte, nodes [][]byte) {
	le := binary.LittleEndian
	level := make([]treeEntry, len(exts))
	for i, e := range exts {
		r := &level[i].raw
		level[i].first = e.logical
		le.PutUint32(r[0:], e.logical)
		le.PutUint16(r[4:], uint16(e.length))
		le.PutUint16(r[6:], 0) // start_hi: block numbers are 32-bit
		le.PutUint32(r[8:], e.start)
	}
	depth := 0
	for len(level) > extentsInInode {
		var up []treeEntry
		for i := 0; i < len(level); i += extentsPerBlock {
			chunk := level[i:min(i+extentsPerBlock, len(level))]
			node := make([]byte, blockSize)
			putExtentHeader(node, len(chunk), extentsPerBlock, depth)
			for j := range chunk {
				copy(node[extentEntrySize*(j+1):], chunk[j].raw[:])
			}
			blk := blocks[len(nodes)]
			nodes = append(nodes, node)
			var idx treeEntry
			idx.first = chunk[0].first
			le.PutUint32(idx.raw[0:], idx.first)
			le.PutUint32(idx.raw[4:], blk)
			up = append(up, idx)
		}
		level = up
		depth++
	}
	putExtentHeader(iblock[:], len(level), extentsInInode, depth)
	for j := range level {
		copy(iblock[extentEntrySize*(j+1):], level[j].raw[:])
	}
	return iblock, nodes
}

func putExtentHeader(b []byte, entries, max, depth int) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], extentMagic)
	le.PutUint16(b[2:], uint16(entries))
	le.PutUint16(b[4:], uint16(max))
	le.PutUint16(b[6:], uint16(depth))
	le.PutUint32(b[8:], 0) // generation, unused
}
