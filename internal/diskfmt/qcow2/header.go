package qcow2

import "encoding/binary"

// Header constants from qcow2.txt, "Header".
const (
	magic   = 0x514649fb // "QFI\xfb"
	version = 3

	// headerLength is the size of the version 3 header without the optional
	// compression_type field (bytes 104-111); zlib, the default, is implied.
	headerLength = 104

	// refcountOrder 4 means 16-bit refcounts, what qemu-img creates by default.
	refcountOrder = 4
	refcountBytes = (1 << refcountOrder) / 8
)

// header is the qcow2 version 3 header. Every field not listed stays 0: no
// backing file, no encryption, no snapshots and no feature bits, so any qemu
// since 1.1 opens the image without optional features.
type header struct {
	clusterBits           uint32
	size                  uint64 // virtual disk size in bytes
	l1Size                uint32 // number of L1 entries
	l1TableOffset         uint64
	refcountTableOffset   uint64
	refcountTableClusters uint32
}

// marshal encodes the header, all fields big-endian, followed by the
// end-of-header-extensions marker (type 0, length 0).
func (h header) marshal() []byte {
	b := make([]byte, headerLength+8)
	be := binary.BigEndian
	be.PutUint32(b[0:], magic)
	be.PutUint32(b[4:], version)
	// 8: backing_file_offset, 16: backing_file_size: 0.
	be.PutUint32(b[20:], h.clusterBits)
	be.PutUint64(b[24:], h.size)
	// 32: crypt_method: 0.
	be.PutUint32(b[36:], h.l1Size)
	be.PutUint64(b[40:], h.l1TableOffset)
	be.PutUint64(b[48:], h.refcountTableOffset)
	be.PutUint32(b[56:], h.refcountTableClusters)
	// 60: nb_snapshots, 64: snapshots_offset: 0.
	// 72: incompatible, 80: compatible, 88: autoclear features: 0.
	be.PutUint32(b[96:], refcountOrder)
	be.PutUint32(b[100:], headerLength)
	// 104..111: header extension end marker, already zero.
	return b
}
