package squashfs

import "encoding/binary"

// The export table (squashfs.rst 3.7) maps inode numbers to inode
// references, so that an NFS file handle (which carries only the inode
// number) can be resolved: the reference of inode n is record n-1, u64
// each, written as a lookup table. Optional (Options.NoExport); the
// superblock's lookup_table_start is then SQUASHFS_INVALID_BLK.
func exportRecords(t *tree) []byte {
	b := make([]byte, 0, 8*len(t.inodes))
	for _, ino := range t.inodes {
		b = binary.LittleEndian.AppendUint64(b, ino.ref)
	}
	return b
}
