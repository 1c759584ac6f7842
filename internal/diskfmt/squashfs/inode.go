package squashfs

import (
	"encoding/binary"
	"math"
)

// Inodes (squashfs.rst 3.2, squashfs_fs.h struct squashfs_*_inode_header)
// are packed back to back in the inode table. Every inode starts with the
// 16-byte base header {u16 type, u16 mode, u16 uid index, u16 gid index,
// u32 mtime, u32 inode number}. Each type has a compact basic form and an
// extended form (type + 7) for what the basic one cannot express:
//
//	directory: listing > 64 KiB, a directory index, or xattrs
//	file:      size or start >= 4 GiB, nlink > 1, sparse blocks, or xattrs
//	others:    xattrs (their basic form already has nlink)

// appendBase appends the common header with inode type typ.
func appendBase(b []byte, ino *inode, typ uint16) []byte {
	le := binary.LittleEndian
	b = le.AppendUint16(b, typ)
	b = le.AppendUint16(b, ino.mode)
	b = le.AppendUint16(b, ino.uid)
	b = le.AppendUint16(b, ino.gid)
	b = le.AppendUint32(b, ino.mtime)
	return le.AppendUint32(b, ino.number)
}

// dirLayout is where a directory's listing went in the directory table.
type dirLayout struct {
	startBlock uint32 // directory table block holding the listing start
	offset     uint16 // offset of the listing in that block
	size       uint32 // listing bytes + 3 (the kernel counts "." and "..")
	index      []dirIndex
}

// appendDirInode appends a directory inode (struct squashfs_dir_inode_header
// or squashfs_ldir_inode_header followed by its index entries).
func appendDirInode(b []byte, ino *inode, l dirLayout) []byte {
	le := binary.LittleEndian
	if l.size <= math.MaxUint16 && len(l.index) == 0 && ino.xattrID == noXattr {
		b = appendBase(b, ino, uint16(kindDir))
		b = le.AppendUint32(b, l.startBlock)
		b = le.AppendUint32(b, ino.nlink)
		b = le.AppendUint16(b, uint16(l.size))
		b = le.AppendUint16(b, l.offset)
		return le.AppendUint32(b, ino.parent)
	}
	b = appendBase(b, ino, uint16(kindDir+extendedOffset))
	b = le.AppendUint32(b, ino.nlink)
	b = le.AppendUint32(b, l.size)
	b = le.AppendUint32(b, l.startBlock)
	b = le.AppendUint32(b, ino.parent)
	b = le.AppendUint16(b, uint16(len(l.index)))
	b = le.AppendUint16(b, l.offset)
	b = le.AppendUint32(b, ino.xattrID)
	for _, x := range l.index {
		b = le.AppendUint32(b, x.index)
		b = le.AppendUint32(b, x.start)
		b = le.AppendUint32(b, uint32(len(x.name)-1))
		b = append(b, x.name...)
	}
	return b
}

// appendFileInode appends a regular file inode
// (struct squashfs_reg_inode_header or squashfs_lreg_inode_header) with
// its block list.
func appendFileInode(b []byte, ino *inode) []byte {
	le := binary.LittleEndian
	f := ino.file
	if f.size <= math.MaxUint32 && f.start <= math.MaxUint32 && ino.nlink == 1 &&
		f.sparse == 0 && ino.xattrID == noXattr {
		b = appendBase(b, ino, uint16(kindFile))
		b = le.AppendUint32(b, uint32(f.start))
		b = le.AppendUint32(b, f.fragIndex)
		b = le.AppendUint32(b, f.fragOffset)
		b = le.AppendUint32(b, uint32(f.size))
	} else {
		b = appendBase(b, ino, uint16(kindFile+extendedOffset))
		b = le.AppendUint64(b, f.start)
		b = le.AppendUint64(b, uint64(f.size))
		b = le.AppendUint64(b, f.sparse)
		b = le.AppendUint32(b, ino.nlink)
		b = le.AppendUint32(b, f.fragIndex)
		b = le.AppendUint32(b, f.fragOffset)
		b = le.AppendUint32(b, ino.xattrID)
	}
	for _, s := range f.sizes {
		b = le.AppendUint32(b, s)
	}
	return b
}

// appendOtherInode appends a symlink, device, fifo or socket inode.
func appendOtherInode(b []byte, ino *inode) []byte {
	le := binary.LittleEndian
	ext := ino.xattrID != noXattr
	typ := uint16(ino.kind)
	if ext {
		typ += extendedOffset
	}
	b = appendBase(b, ino, typ)
	b = le.AppendUint32(b, ino.nlink)
	switch ino.kind {
	case kindSymlink:
		// struct squashfs_symlink_inode_header: the target follows,
		// not NUL-terminated; the extended form appends the xattr id
		// after it.
		b = le.AppendUint32(b, uint32(len(ino.node.Target)))
		b = append(b, ino.node.Target...)
	case kindBlock, kindChar:
		b = le.AppendUint32(b, ino.rdev)
	}
	if ext {
		b = le.AppendUint32(b, ino.xattrID)
	}
	return b
}
