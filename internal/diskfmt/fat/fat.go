package fat

import "encoding/binary"

// End-of-chain markers, which are also the values of FAT entry 1 with the
// "clean shutdown" and "no I/O error" bits set (fatgen103 "FAT Volume
// Initialization"): a freshly written volume is clean.
const (
	eocFAT16 = 0xFFFF
	eocFAT32 = 0x0FFFFFFF
)

// table is the File Allocation Table: one entry per cluster, 0 for free, the
// next cluster of the chain, or end-of-chain.
type table struct {
	g       geometry
	entries []uint32
}

func newTable(g geometry) *table {
	t := &table{g: g, entries: make([]uint32, g.clusters+2)}
	eoc := t.eoc()
	// Entry 0 holds the media descriptor in its low byte, all other bits set.
	t.entries[0] = eoc&^0xFF | mediaFixed
	t.entries[1] = eoc
	return t
}

func (t *table) eoc() uint32 {
	if t.g.fatType == FAT32 {
		return eocFAT32
	}
	return eocFAT16
}

// chain links n clusters starting at first, contiguously: files and
// directories are allocated in one run each.
func (t *table) chain(first uint32, n int64) {
	for i := int64(0); i < n; i++ {
		c := first + uint32(i)
		if i == n-1 {
			t.entries[c] = t.eoc()
		} else {
			t.entries[c] = c + 1
		}
	}
}

// marshal encodes one FAT, padded to its sectors with zeros (free).
func (t *table) marshal() []byte {
	b := make([]byte, t.g.fatSectors*sectorSize)
	for i, e := range t.entries {
		if t.g.fatType == FAT32 {
			binary.LittleEndian.PutUint32(b[4*i:], e)
		} else {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(e))
		}
	}
	return b
}
