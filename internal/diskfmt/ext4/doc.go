// Package ext4 writes ext4 file system images from an in-memory tree
// (fstree.Node, as DirSource builds from a directory), without mke2fs,
// root, mounts or loop devices, and byte-for-byte reproducibly. It makes
// the ext4 partitions of Kairos raw disk images (COS_STATE, the COS_ACTIVE
// root image inside it, COS_OEM, COS_RECOVERY, COS_PERSISTENT).
//
// # Format
//
// The on-disk format is the one of the Linux kernel's
// Documentation/filesystems/ext4/ (globals.rst, super.rst, group_descr.rst,
// bitmaps.rst, inodes.rst, ifork.rst, directory.rst, attributes.rst,
// journal.rst), as checked by e2fsprogs' e2fsck and read by the kernel and
// GRUB 2's ext2 driver. One file per structure:
//
//   - superblock.go: the superblock, its backups, UUID and hash seed;
//   - groupdesc.go:  32-byte block group descriptors;
//   - bitmap.go:     block and inode bitmaps;
//   - inode.go:      256-byte inodes, timestamps, device numbers;
//   - extent.go:     extent trees (in-inode root, leaf and index blocks);
//   - dir.go:        linear directory blocks;
//   - xattr.go:      in-inode and block extended attributes, POSIX ACLs;
//   - journal.go:    the internal JBD2 journal's superblock;
//   - layout.go:     block group geometry and the block allocator;
//   - plan.go:       inode numbering of the tree and block placement;
//   - write.go:      the API and the writer.
//
// The file systems have 4 KiB blocks, 32768 blocks per group, 256-byte
// inodes with 32 bytes of extra fields, 32-bit block numbers (no 64bit:
// up to 16 TiB), no reserved blocks, and these features:
//
//	compat     ext_attr (+ has_journal with Options.Journal)
//	incompat   filetype, extents
//	ro_compat  sparse_super, large_file, huge_file, dir_nlink, extra_isize
//
// GRUB's ext2 driver refuses a file system with an incompat feature it
// does not know; it knows filetype and extents (and flex_bg, meta_bg,
// 64bit), and ignores compat and ro_compat features. No flex_bg,
// uninit_bg, metadata_csum, dir_index, resize_inode or 64bit: every group
// keeps its own bitmaps and inode table at its start, and all metadata is
// written as initialized (no lazy init).
//
// # Layout
//
// Inodes are numbered depth first, entries sorted by name (bytewise):
// root is 2, lost+found 11 (the tree's own, or an empty one created with
// mode 0700), the journal 8, the others from 12 on. Blocks are allocated
// in the same order in one ascending sweep (journal first, then for each
// inode its attribute block, its data, its extent tree blocks), so every
// file is contiguous except where it crosses a group's metadata, and
// writing in that order is sequential. Files with more than four extents
// (larger than about 380 MiB) get extent trees with index blocks.
// Directories are linear (no htree); attributes go in the inode when they
// fit in its 96 spare bytes, otherwise all of them in one block.
//
// # Sparse output and reproducibility
//
// Only metadata and data blocks with non-zero content are written: the
// target must read as zero elsewhere (a freshly truncated file, which stays
// sparse). Nothing depends on the clock or on map order: times come from
// the tree and Options.ModTime, the UUID is derived from the label unless
// given, and the directory hash seed from the UUID.
package ext4
