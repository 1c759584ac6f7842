package ext4

import (
	"crypto/sha1"
	"encoding/binary"
)

// superblockOffset: the primary superblock is 1024 bytes into the file
// system (block 0 with 4 KiB blocks); the first 1024 bytes are left to boot
// code. Backup copies sit at the start of their group's first block.
const (
	superblockOffset = 1024
	superblockSize   = 1024
	superMagic       = 0xEF53
)

// Feature flags (Documentation/filesystems/ext4/super.rst).
const (
	compatHasJournal = 0x4
	compatExtAttr    = 0x8

	incompatFiletype = 0x2
	incompatExtents  = 0x40

	roCompatSparseSuper = 0x1
	roCompatLargeFile   = 0x2
	roCompatHugeFile    = 0x8
	roCompatDirNlink    = 0x20
	roCompatExtraIsize  = 0x40
)

const (
	stateValid     = 1 // s_state: cleanly unmounted
	errorsContinue = 1 // s_errors: the kernel's default behaviour

	// defmXattrUser|defmACL: the default mount options mke2fs records, so
	// that user.* xattrs and ACLs work on the data partitions without
	// mount options.
	defaultMountOpts = 0x0004 | 0x0008

	hashHalfMD4 = 1 // s_def_hash_version
	// flagsSignedHash is what mke2fs records on x86; recording one of the
	// two keeps the kernel and e2fsck from choosing (and writing) it later.
	flagsSignedHash = 0x1

	jnlBackupBlocks = 1 // s_jnl_backup_type: s_jnl_blocks holds i_block
)

// superblock is the part of struct ext4_super_block that varies between
// file systems; marshal fills in the constants.
type superblock struct {
	geo          geometry
	freeBlocks   uint64
	freeInodes   uint32
	time         uint64 // unsigned seconds, 40 bits
	label        [16]byte
	uuid         [16]byte
	hashSeed     [16]byte
	journal      bool
	journalBlock [15]uint32 // the journal inode's i_block
	journalSize  uint64
}

func (s *superblock) features() (compat, incompat, roCompat uint32) {
	compat = compatExtAttr
	if s.journal {
		compat |= compatHasJournal
	}
	incompat = incompatFiletype | incompatExtents
	roCompat = roCompatSparseSuper | roCompatLargeFile | roCompatHugeFile | roCompatDirNlink | roCompatExtraIsize
	return
}

// marshal returns the superblock as stored in group group (s_block_group_nr
// is the only field that differs between copies).
func (s *superblock) marshal(group uint32) []byte {
	b := make([]byte, superblockSize)
	le := binary.LittleEndian
	g := &s.geo
	le.PutUint32(b[0x00:], g.inodes())
	le.PutUint32(b[0x04:], g.blocks)
	le.PutUint32(b[0x08:], 0) // reserved blocks: these are data partitions
	le.PutUint32(b[0x0C:], uint32(s.freeBlocks))
	le.PutUint32(b[0x10:], s.freeInodes)
	le.PutUint32(b[0x14:], 0) // first data block
	le.PutUint32(b[0x18:], logBlockSize)
	le.PutUint32(b[0x1C:], logBlockSize) // cluster size = block size (no bigalloc)
	le.PutUint32(b[0x20:], blocksPerGroup)
	le.PutUint32(b[0x24:], blocksPerGroup)
	le.PutUint32(b[0x28:], g.inodesPerGroup)
	le.PutUint32(b[0x2C:], uint32(s.time)) // s_mtime
	le.PutUint32(b[0x30:], uint32(s.time)) // s_wtime
	le.PutUint16(b[0x34:], 0)              // mount count
	le.PutUint16(b[0x36:], 0xFFFF)         // max mount count -1: no mount-count fsck, as mke2fs
	le.PutUint16(b[0x38:], superMagic)
	le.PutUint16(b[0x3A:], stateValid)
	le.PutUint16(b[0x3C:], errorsContinue)
	le.PutUint32(b[0x40:], uint32(s.time)) // s_lastcheck
	le.PutUint32(b[0x44:], 0)              // no check interval
	le.PutUint32(b[0x48:], 0)              // creator OS: Linux
	le.PutUint32(b[0x4C:], 1)              // EXT2_DYNAMIC_REV
	le.PutUint32(b[0x54:], firstIno)
	le.PutUint16(b[0x58:], inodeSize)
	le.PutUint16(b[0x5A:], uint16(group))
	compat, incompat, roCompat := s.features()
	le.PutUint32(b[0x5C:], compat)
	le.PutUint32(b[0x60:], incompat)
	le.PutUint32(b[0x64:], roCompat)
	copy(b[0x68:0x78], s.uuid[:])
	copy(b[0x78:0x88], s.label[:])
	if s.journal {
		le.PutUint32(b[0xE0:], journalIno)
	}
	copy(b[0xEC:0xFC], s.hashSeed[:])
	b[0xFC] = hashHalfMD4
	if s.journal {
		b[0xFD] = jnlBackupBlocks
	}
	le.PutUint32(b[0x100:], defaultMountOpts)
	le.PutUint32(b[0x108:], uint32(s.time)) // s_mkfs_time
	if s.journal {
		for i, v := range s.journalBlock {
			le.PutUint32(b[0x10C+4*i:], v)
		}
		le.PutUint32(b[0x10C+4*15:], uint32(s.journalSize>>32))
		le.PutUint32(b[0x10C+4*16:], uint32(s.journalSize))
	}
	le.PutUint32(b[0x158:], uint32(s.freeBlocks>>32))
	le.PutUint16(b[0x15C:], extraIsize) // s_min_extra_isize
	le.PutUint16(b[0x15E:], extraIsize) // s_want_extra_isize
	le.PutUint32(b[0x160:], flagsSignedHash)
	hi := byte(s.time >> 32)
	b[0x274], b[0x275], b[0x276], b[0x277] = hi, hi, hi, hi // wtime, mtime, mkfs_time, lastcheck
	return b
}

// uuidNamespace is the UUIDv5 namespace of volume UUIDs derived from labels,
// itself derived from the RFC 4122 URL namespace and this package's path.
var uuidNamespace = uuidV5([16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8},
	"https://github.com/kairos-io/kairos/internal/artifacts/ext4")

// uuidV5 is RFC 4122's name-based UUID with SHA-1: the same name always
// gives the same UUID, which is what makes images reproducible.
func uuidV5(ns [16]byte, name string) [16]byte {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0F | 0x50
	u[8] = u[8]&0x3F | 0x80
	return u
}

// hashSeedFor derives the directory hash seed from the volume UUID, as a
// random seed would be but reproducibly. It only matters if dir_index is
// turned on later (tune2fs -O dir_index).
func hashSeedFor(uuid [16]byte) [16]byte {
	h := sha1.New()
	h.Write([]byte("ext4 directory hash seed"))
	h.Write(uuid[:])
	var s [16]byte
	copy(s[:], h.Sum(nil))
	return s
}
