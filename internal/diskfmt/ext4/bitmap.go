package ext4

// prefixBitmap returns a one-block bitmap whose first used bits are set, as
// are the bits from valid to the end of the block: the padding past the
// last block of a short last group or past the last inode of a group,
// which e2fsck expects to be marked in use.
//
// Both bitmaps of every group are of this shape because the allocator fills
// each group's blocks, and inode numbers are handed out, in one ascending
// sweep (see allocator).
func prefixBitmap(used, valid uint32) []byte {
	b := make([]byte, blockSize)
	setBits(b, 0, used)
	setBits(b, valid, 8*blockSize)
	return b
}

// setBits sets bits [from, to) of b, whole bytes at a time where possible.
func setBits(b []byte, from, to uint32) {
	for from < to && from%8 != 0 {
		b[from/8] |= 1 << (from % 8)
		from++
	}
	for ; from+8 <= to; from += 8 {
		b[from/8] = 0xFF
	}
	for ; from < to; from++ {
		b[from/8] |= 1 << (from % 8)
	}
}
