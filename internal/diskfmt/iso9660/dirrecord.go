package iso9660

import "time"

// A directory is a sequence of Directory Records (ECMA-119 9.1), "." and
// ".." first, then the entries sorted by identifier (9.3). A record never
// crosses a block boundary (6.8.1.1): the rest of the block is left zero and
// the record starts the next one. The directory's data length is whole
// blocks.

// Directory record flags (ECMA-119 9.1.6).
const flagDirectory = 0x02

// Identifiers of the "." and ".." records (ECMA-119 6.8.2.2).
var (
	identDot    = []byte{0x00}
	identDotDot = []byte{0x01}
)

// record is one directory record before serialization.
type record struct {
	ident  []byte
	target *node     // extent, size, flags and date come from here
	joliet bool      // take the target's Joliet directory extent
	su     systemUse // Rock Ridge; empty in the Joliet tree
}

// baseLen is the record length without System Use: the 33 fixed bytes, the
// identifier and the padding byte that keeps the System Use field at an even
// offset (9.1.12).
func baseLen(ident []byte) int {
	n := 33 + len(ident)
	if len(ident)%2 == 0 {
		n++
	}
	return n
}

// length is the whole record, padded to an even size.
func (r *record) length() int {
	n := baseLen(r.ident) + r.su.inlineLen()
	return n + n%2
}

// dirSize lays records out in blocks and returns the directory's data
// length (whole blocks).
func dirSize(recs []record) int64 {
	off := int64(0)
	for i := range recs {
		l := int64(recs[i].length())
		if off%BlockSize+l > BlockSize {
			off += BlockSize - off%BlockSize
		}
		off += l
	}
	return blocks(off) * BlockSize
}

// appendRecord serializes one record (ECMA-119 9.1).
func appendRecord(b []byte, r *record) []byte {
	l := r.length()
	start := len(b)
	b = append(b, make([]byte, baseLen(r.ident))...)
	rec := b[start:]
	rec[0] = byte(l)
	rec[1] = 0 // no extended attribute record
	lba, size, flags := r.target.extentOf(r.joliet)
	putBoth32(rec[2:], lba)
	putBoth32(rec[10:], size)
	putDirDate(rec[18:], time.Unix(r.target.mtime, 0))
	rec[25] = flags
	rec[26], rec[27] = 0, 0 // not interleaved
	putBoth16(rec[28:], 1)  // volume sequence number
	rec[32] = byte(len(r.ident))
	copy(rec[33:], r.ident)
	b = r.su.appendInline(b)
	for len(b)-start < l {
		b = append(b, 0)
	}
	return b
}

// dirBytes serializes a directory's records into its extent.
func dirBytes(recs []record, size int64) []byte {
	b := make([]byte, 0, size)
	for i := range recs {
		l := recs[i].length()
		if len(b)%BlockSize+l > BlockSize {
			b = append(b, make([]byte, BlockSize-len(b)%BlockSize)...)
		}
		b = appendRecord(b, &recs[i])
	}
	return append(b, make([]byte, int(size)-len(b))...)
}
