package ext4

import "encoding/binary"

// Inodes (Documentation/filesystems/ext4/inodes.rst): 256 bytes each, the
// 128-byte original structure, 32 bytes of extra fields (i_extra_isize)
// holding the time extensions and creation time, and 96 bytes left for
// in-inode extended attributes.
const (
	goodOldInodeSize = 128
	extraIsize       = 32
)

// i_mode file type bits.
const (
	sIFIFO  = 0x1000
	sIFCHR  = 0x2000
	sIFDIR  = 0x4000
	sIFBLK  = 0x6000
	sIFREG  = 0x8000
	sIFLNK  = 0xA000
	sIFSOCK = 0xC000
)

const extentsFlag = 0x80000 // EXT4_EXTENTS_FL: i_block holds an extent tree

// maxLinks is EXT4_LINK_MAX. A directory with more subdirectories than
// that records a link count of 1 (dir_nlink).
const maxLinks = 65000

// Times are 32-bit signed seconds extended by the two low "epoch" bits of
// the matching _extra field. The range stops where e2fsck starts to suspect
// pre-1970 times encoded by old kernels (epoch 3 with the sign bit set).
const (
	minTime = -1 << 31
	maxTime = 1<<33 + 1<<31 - 1
)

func encodeTime(sec int64) (lo, extra uint32) {
	sec = max(minTime, min(maxTime, sec))
	lo = uint32(sec)
	extra = uint32((sec-int64(int32(lo)))>>32) & 3 // nanoseconds (upper 30 bits) are 0
	return lo, extra
}

// encodeDevice stores a device number in i_block as the kernel does: the
// old 16-bit encoding in i_block[0] when both numbers fit in a byte, else
// the new 32-bit encoding in i_block[1] (and i_block[0] zero).
func encodeDevice(b []byte, major, minor uint32) {
	le := binary.LittleEndian
	if major < 256 && minor < 256 {
		le.PutUint32(b[0:], major<<8|minor)
		return
	}
	le.PutUint32(b[4:], minor&0xFF|major<<8|(minor&^0xFF)<<12)
}

// rawInode is everything an inode's 256 bytes hold.
type rawInode struct {
	mode          uint16
	uid, gid      uint32
	size          uint64
	links         uint16
	time          int64 // atime, ctime, mtime and crtime alike
	sectors       uint64
	flags         uint32
	block         [60]byte
	xattrBlock    uint32
	xattrsInInode []xattr
}

func (r *rawInode) marshal(b []byte) {
	le := binary.LittleEndian
	t, tx := encodeTime(r.time)
	le.PutUint16(b[0x00:], r.mode)
	le.PutUint16(b[0x02:], uint16(r.uid))
	le.PutUint32(b[0x04:], uint32(r.size))
	le.PutUint32(b[0x08:], t) // atime
	le.PutUint32(b[0x0C:], t) // ctime
	le.PutUint32(b[0x10:], t) // mtime
	le.PutUint16(b[0x18:], uint16(r.gid))
	le.PutUint16(b[0x1A:], r.links)
	// i_blocks counts 512-byte sectors (huge_file without
	// EXT4_HUGE_FILE_FL): data, extent tree and attribute blocks.
	le.PutUint32(b[0x1C:], uint32(r.sectors))
	le.PutUint32(b[0x20:], r.flags)
	copy(b[0x28:0x64], r.block[:])
	le.PutUint32(b[0x68:], r.xattrBlock)
	le.PutUint32(b[0x6C:], uint32(r.size>>32))
	le.PutUint16(b[0x74:], uint16(r.sectors>>32))
	le.PutUint16(b[0x78:], uint16(r.uid>>16))
	le.PutUint16(b[0x7A:], uint16(r.gid>>16))
	le.PutUint16(b[0x80:], extraIsize)
	le.PutUint32(b[0x84:], tx) // ctime_extra
	le.PutUint32(b[0x88:], tx) // mtime_extra
	le.PutUint32(b[0x8C:], tx) // atime_extra
	le.PutUint32(b[0x90:], t)  // crtime
	le.PutUint32(b[0x94:], tx) // crtime_extra
	if len(r.xattrsInInode) > 0 {
		marshalInodeXattrs(b[goodOldInodeSize+extraIsize:inodeSize], r.xattrsInInode)
	}
}
