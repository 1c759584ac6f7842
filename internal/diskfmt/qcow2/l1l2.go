package qcow2

import "encoding/binary"

// oflagCopied (bit 63 of L1 and L2 entries) says the referenced cluster has a
// refcount of exactly 1 and may be written in place. Every cluster of a
// converted image is referenced once, so every used entry carries it;
// `qemu-img check` reports an entry without it as an error.
const oflagCopied = uint64(1) << 63

// l1Table returns the L1 table, padded to whole clusters: entry i points to
// the L2 table of guest clusters [i*l2Entries, (i+1)*l2Entries), or is 0 when
// none of those clusters is stored (the L2 table is then not stored either).
func l1Table(l layout, m *clusterMap) []byte {
	b := make([]byte, l.l1Clusters*l.clusterSize)
	next := l.l2Offset()
	for i := int64(0); i < l.l1Size; i++ {
		if !m.any(i*l.l2Entries, (i+1)*l.l2Entries) {
			continue
		}
		binary.BigEndian.PutUint64(b[i*entryBytes:], uint64(next)|oflagCopied)
		next += l.clusterSize
	}
	return b
}

// l2Writer produces the stored L2 tables in L1 order. It tracks how many
// data clusters earlier tables already mapped, because data clusters are laid
// out in guest order right after the last L2 table.
type l2Writer struct {
	l        layout
	m        *clusterMap
	l1Index  int64
	dataNext int64 // host offset of the next data cluster to map
}

func newL2Writer(l layout, m *clusterMap) *l2Writer {
	return &l2Writer{l: l, m: m, dataNext: l.dataOffset()}
}

// next fills buf (one cluster) with the next stored L2 table and reports
// false when there is none left. Entries of unstored clusters stay 0:
// "unallocated", which reads as zeros in an image without backing file.
func (w *l2Writer) next(buf []byte) bool {
	l := w.l
	for ; w.l1Index < l.l1Size; w.l1Index++ {
		first := w.l1Index * l.l2Entries
		if !w.m.any(first, first+l.l2Entries) {
			continue
		}
		clear(buf)
		for j := int64(0); j < l.l2Entries; j++ {
			if !w.m.has(first + j) {
				continue
			}
			binary.BigEndian.PutUint64(buf[j*entryBytes:], uint64(w.dataNext)|oflagCopied)
			w.dataNext += l.clusterSize
		}
		w.l1Index++
		return true
	}
	return false
}
