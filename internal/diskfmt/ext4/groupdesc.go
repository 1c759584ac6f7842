package ext4

import "encoding/binary"

// groupDesc is a 32-byte block group descriptor
// (Documentation/filesystems/ext4/group_descr.rst). Without uninit_bg or
// metadata_csum the flags, unused-inode count and checksums stay zero: every
// bitmap and inode table is taken as initialized, which it is (written, or
// zero on the sparse target).
type groupDesc struct {
	blockBitmap, inodeBitmap, inodeTable uint32
	freeBlocks, freeInodes, usedDirs     uint32
}

func (d groupDesc) marshal(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0x00:], d.blockBitmap)
	le.PutUint32(b[0x04:], d.inodeBitmap)
	le.PutUint32(b[0x08:], d.inodeTable)
	le.PutUint16(b[0x0C:], uint16(d.freeBlocks))
	le.PutUint16(b[0x0E:], uint16(d.freeInodes))
	le.PutUint16(b[0x10:], uint16(d.usedDirs))
}

// marshalGDT returns the group descriptor table, gdtBlocks blocks long.
func marshalGDT(g *geometry, descs []groupDesc) []byte {
	b := make([]byte, int(g.gdtBlocks)*blockSize)
	for i, d := range descs {
		d.marshal(b[i*descSize:])
	}
	return b
}
