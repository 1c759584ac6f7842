package squashfs

import (
	"encoding/binary"
	"fmt"
)

// The id table (squashfs.rst 3.6): inodes hold 16-bit indexes into a table
// of 32-bit uids and gids, stored as a lookup table (u32 records in
// metadata blocks plus a u64 index of the blocks), so at most 65536
// distinct ids.
const maxIDs = 1 << 16

type idTable struct {
	ids   []uint32
	slots map[uint32]uint16
}

func newIDTable() *idTable {
	return &idTable{slots: map[uint32]uint16{}}
}

// index returns id's slot, adding it on first use. Slots are handed out in
// inode number order, so the table is deterministic.
func (t *idTable) index(id uint32) (uint16, error) {
	if i, ok := t.slots[id]; ok {
		return i, nil
	}
	if len(t.ids) == maxIDs {
		return 0, fmt.Errorf("squashfs: more than %d distinct uids/gids", maxIDs)
	}
	i := uint16(len(t.ids))
	t.ids = append(t.ids, id)
	t.slots[id] = i
	return i, nil
}

// records returns the table's on-disk records.
func (t *idTable) records() []byte {
	b := make([]byte, 0, 4*len(t.ids))
	for _, id := range t.ids {
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	return b
}
