package ext4

import "encoding/binary"

// The journal is an internal JBD2 journal (Documentation/filesystems/ext4/
// journal.rst) in inode 8: a regular file whose first block is the journal
// superblock. It is created empty and clean (s_start 0), so nothing is ever
// replayed and the remaining blocks only need to read as zero, which they
// do on the sparse target without being written.

const (
	jbd2Magic        = 0xC03B3998
	jbd2SuperblockV2 = 4
	// minJournalBlocks is JBD2_MIN_JOURNAL_BLOCKS: the kernel refuses
	// smaller journals.
	minJournalBlocks = 1024
)

// journalBlocksFor sizes the journal of a file system of blocks blocks like
// mke2fs's defaults for 4 KiB blocks (ext2fs_default_journal_size), but
// capped at 64 MiB: 4 MiB up to 128 MiB, 16 MiB up to 1 GiB, 32 MiB up to
// 2 GiB, 64 MiB above. These images are written once and then mostly read
// (the OS root is mounted read-only), so a larger journal would only cost
// space.
func journalBlocksFor(blocks uint64) uint32 {
	switch {
	case blocks < 32768:
		return 1024
	case blocks < 256*1024:
		return 4096
	case blocks < 512*1024:
		return 8192
	}
	return 16384
}

// marshalJournalSuper returns the journal superblock (big-endian, unlike
// the rest of ext4) of a clean, empty journal of blocks blocks.
func marshalJournalSuper(uuid [16]byte, blocks uint32) []byte {
	be := binary.BigEndian
	b := make([]byte, 1024)
	be.PutUint32(b[0x00:], jbd2Magic)
	be.PutUint32(b[0x04:], jbd2SuperblockV2)
	be.PutUint32(b[0x0C:], blockSize)
	be.PutUint32(b[0x10:], blocks) // s_maxlen
	be.PutUint32(b[0x14:], 1)      // s_first: log blocks follow the superblock
	be.PutUint32(b[0x18:], 1)      // s_sequence: first expected transaction
	be.PutUint32(b[0x1C:], 0)      // s_start 0: the journal is empty
	copy(b[0x30:0x40], uuid[:])    // s_uuid: the file system's, as mke2fs
	be.PutUint32(b[0x40:], 1)      // s_nr_users: one file system (internal journal)
	return b
}
