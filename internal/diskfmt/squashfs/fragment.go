package squashfs

import "encoding/binary"

// Fragments (squashfs.rst 3.4-3.5): the tail end of a file (its last
// size % block_size bytes, or the whole of a file smaller than a block) is
// packed with other tails into a fragment block, compressed like a data
// block. A file inode names its fragment by index and the tail's offset in
// the uncompressed fragment block; the fragment table maps the index to
// the block's position and stored size as 16-byte records
// {u64 start, u32 size (bit 24 set when stored raw), u32 unused}, written
// as a lookup table (metadata blocks + u64 index).
//
// Tails are packed in data layout order, first come first packed, by the
// single goroutine that reads files (packer below), so fragment contents
// and numbering do not depend on compression scheduling.

// blockUncompressed marks a data or fragment block stored raw
// (SQUASHFS_COMPRESSED_BIT_BLOCK).
const blockUncompressed = 1 << 24

type fragmentEntry struct {
	start uint64
	size  uint32
}

func fragmentRecords(entries []fragmentEntry) []byte {
	b := make([]byte, 0, 16*len(entries))
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint64(b, e.start)
		b = binary.LittleEndian.AppendUint32(b, e.size)
		b = binary.LittleEndian.AppendUint32(b, 0)
	}
	return b
}

// packer collects tails into the fragment block being filled.
type packer struct {
	blockSize int
	cur       []byte // the open fragment block
	count     uint32 // fragment blocks started so far (index of cur)
}

// add places tail in the open fragment block and returns its position. If
// it does not fit, full holds the previous block, to be compressed and
// written, and a new block is started (newBuf provides its buffer).
func (p *packer) add(tail []byte, newBuf func() []byte) (index, offset uint32, full []byte) {
	if p.cur == nil {
		p.cur = newBuf()[:0]
	}
	if len(p.cur)+len(tail) > p.blockSize {
		full = p.cur
		p.count++
		p.cur = newBuf()[:0]
	}
	index, offset = p.count, uint32(len(p.cur))
	p.cur = append(p.cur, tail...)
	return index, offset, full
}

// flush returns the last, partly filled block (nil if none).
func (p *packer) flush() []byte {
	if len(p.cur) == 0 {
		return nil
	}
	full := p.cur
	p.cur = nil
	p.count++
	return full
}
