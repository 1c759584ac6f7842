// Package squashfs writes squashfs 4.0 images, as read by the Linux
// kernel, squashfs-tools' unsquashfs and GRUB, without mksquashfs and
// without cgo.
//
// # Format
//
// The on-disk format is the one described in the kernel's
// Documentation/filesystems/squashfs.rst and defined by squashfs-tools'
// squashfs-tools/squashfs_fs.h (struct squashfs_super_block,
// squashfs_*_inode_header, squashfs_dir_header/entry/index,
// squashfs_fragment_entry, squashfs_xattr_*); squashfs-tools-ng's
// doc/format.txt documents the same structures field by field. An image is,
// in this order (the kernel checks each table against the next one's start):
//
//	superblock        96 bytes (superblock.go), written last
//	data blocks       file blocks and fragment blocks (data.go, fragment.go)
//	inode table       metadata blocks (inode.go, metadata.go)
//	directory table   metadata blocks (directory.go)
//	fragment table    lookup table (fragment.go)
//	export table      lookup table (export.go)
//	id table          lookup table (idtable.go)
//	xattr table       key/value blocks, id blocks, header, index (xattr.go)
//	padding           to a multiple of 4 KiB, as mksquashfs pads
//
// Supported: regular files (with sparse blocks, tail-end packing into
// fragments, and duplicate detection that stores identical content once),
// directories (with directory indexes for large ones), symlinks, hardlinks
// (one inode, link count), character and block devices, fifos, sockets,
// uid/gid through the id table, permission bits with setuid/setgid/sticky,
// mtimes, xattrs in the user., trusted. and security. namespaces (so
// security.capability survives), extended inodes where the basic ones
// cannot hold the data (files >= 4 GiB, hardlinks, xattrs, large
// directories). Compressors (compress.go): gzip (zlib streams, the
// default, which GRUB reads; our own encoder, deflate.go, because the Go
// deflate libraries skip 3-byte matches and lose ~3% on executables), xz
// (github.com/ulikunitz/xz, CRC32 check as the kernel requires) and zstd
// (github.com/klauspost/compress); the same compressor is used for data
// and metadata, and blocks that do not shrink are stored raw. No
// compressor options block is written: only default decompressor settings
// are needed.
//
// # Use
//
//	root, err := squashfs.DirSource("/path/to/rootfs")
//	...
//	epoch, err := squashfs.SourceDateEpoch()
//	...
//	stats, err := squashfs.WriteFile("rootfs.squashfs", root, squashfs.Options{
//		Compression: "zstd", ModTime: epoch,
//	})
//
// The input is a tree of fstree.Node values; DirSource builds one from a directory
// on disk, and any other source (OCI layers applied in memory, a tar
// stream) can build one too: fstree.Node documents each field.
//
// # Speed and reproducibility
//
// Blocks are compressed in parallel (Options.Workers goroutines, each with
// its own reusable encoder) while a single dispatcher reads files in a
// fixed order and makes every layout decision (block order, fragment
// packing, duplicates), and a single writer stores results in that order.
// The output is therefore a function of the input tree and the options
// only: inode numbers, directory order (bytewise by name), id and xattr
// tables are all derived from the sorted tree, and the superblock's
// mkfs_time comes from Options.ModTime, never from the clock.
package squashfs
