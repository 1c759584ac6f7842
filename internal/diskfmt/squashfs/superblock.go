package squashfs

import "encoding/binary"

// The superblock (squashfs_fs.h struct squashfs_super_block): 96 bytes at
// offset 0, written last because it points at every table.
const (
	superblockSize = 96
	sqMagic        = 0x73717368 // "hsqs" on disk
	sqMajor        = 4
	sqMinor        = 0

	// invalidTable marks an absent optional table (SQUASHFS_INVALID_BLK).
	invalidTable = ^uint64(0)

	// devBlockSize: the image is padded to a multiple of 4 KiB, as
	// mksquashfs does, so that a loop device (or a partition) exposes
	// every byte of the last block to the kernel.
	devBlockSize = 4096
)

// Superblock flags (squashfs_fs.h SQUASHFS_NOI ... plus NOID from
// squashfs-tools 4.4). Informational only, apart from COMP_OPT which this
// writer never sets (no compressor options block is written: all options
// are the decompressors' defaults).
const (
	flagNoFragments = 1 << 4
	flagDuplicates  = 1 << 6
	flagExportable  = 1 << 7
	flagNoXattrs    = 1 << 9
)

type superblock struct {
	inodes              uint32
	mkfsTime            uint32
	blockSize           uint32
	fragments           uint32
	compression         uint16
	blockLog            uint16
	flags               uint16
	noIDs               uint16
	rootInode           uint64
	bytesUsed           uint64
	idTableStart        uint64
	xattrIDTableStart   uint64
	inodeTableStart     uint64
	directoryTableStart uint64
	fragmentTableStart  uint64
	lookupTableStart    uint64
}

func (s *superblock) marshal() []byte {
	b := make([]byte, 0, superblockSize)
	le := binary.LittleEndian
	b = le.AppendUint32(b, sqMagic)
	b = le.AppendUint32(b, s.inodes)
	b = le.AppendUint32(b, s.mkfsTime)
	b = le.AppendUint32(b, s.blockSize)
	b = le.AppendUint32(b, s.fragments)
	b = le.AppendUint16(b, s.compression)
	b = le.AppendUint16(b, s.blockLog)
	b = le.AppendUint16(b, s.flags)
	b = le.AppendUint16(b, s.noIDs)
	b = le.AppendUint16(b, sqMajor)
	b = le.AppendUint16(b, sqMinor)
	b = le.AppendUint64(b, s.rootInode)
	b = le.AppendUint64(b, s.bytesUsed)
	b = le.AppendUint64(b, s.idTableStart)
	b = le.AppendUint64(b, s.xattrIDTableStart)
	b = le.AppendUint64(b, s.inodeTableStart)
	b = le.AppendUint64(b, s.directoryTableStart)
	b = le.AppendUint64(b, s.fragmentTableStart)
	b = le.AppendUint64(b, s.lookupTableStart)
	return b
}
