package iso9660

import "encoding/binary"

// The path table (ECMA-119 9.4, 6.9) lists every directory with its extent
// and parent number, so that a reader can find a deep directory without
// walking the tree. It is recorded twice, little-endian (type L) and
// big-endian (type M). Directories are numbered from 1 (the root) in the
// table's order: by level, then by parent number, then by identifier
// (6.9.1), which is the breadth-first order of a tree whose children are
// sorted by identifier.

// ptEntry is one directory in a path table.
type ptEntry struct {
	ident  []byte // {0} for the root
	lba    uint32
	parent uint16 // number of the parent directory; the root's is 1
}

func ptEntryLen(ident []byte) int { return 8 + len(ident) + len(ident)%2 }

func pathTableSize(entries []ptEntry) int64 {
	n := 0
	for _, e := range entries {
		n += ptEntryLen(e.ident)
	}
	return int64(n)
}

// pathTableBytes serializes the table in one byte order (9.4.3-9.4.8):
// identifier length, extended attribute length, extent, parent number,
// identifier, a padding byte after an odd identifier.
func pathTableBytes(entries []ptEntry, order binary.ByteOrder) []byte {
	b := make([]byte, 0, pathTableSize(entries))
	for _, e := range entries {
		rec := make([]byte, ptEntryLen(e.ident))
		rec[0] = byte(len(e.ident))
		order.PutUint32(rec[2:], e.lba)
		order.PutUint16(rec[6:], e.parent)
		copy(rec[8:], e.ident)
		b = append(b, rec...)
	}
	return b
}
