package qcow2

import "encoding/binary"

// refcountTable returns the refcount table, padded to whole clusters: entry j
// holds the host offset of refcount block j. Unused entries stay 0.
func refcountTable(l layout) []byte {
	b := make([]byte, l.rtClusters*l.clusterSize)
	for j := int64(0); j < l.rbCount; j++ {
		off := l.rbOffset() + j*l.clusterSize
		binary.BigEndian.PutUint64(b[j*entryBytes:], uint64(off))
	}
	return b
}

// refcountBlock fills buf (one cluster) with refcount block j: 16-bit
// big-endian counts for host clusters [j*refsPerBlock, (j+1)*refsPerBlock).
// Every cluster of the file is referenced exactly once (header, tables, data),
// every cluster past the end of the file has refcount 0.
func refcountBlock(l layout, j int64, buf []byte) {
	clear(buf)
	refsPerBlock := l.clusterSize / refcountBytes
	first := j * refsPerBlock
	used := min(max(l.hostClusters()-first, 0), refsPerBlock)
	for i := int64(0); i < used; i++ {
		binary.BigEndian.PutUint16(buf[i*refcountBytes:], 1)
	}
}
