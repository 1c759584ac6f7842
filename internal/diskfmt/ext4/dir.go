package ext4

import "encoding/binary"

// Linear directories (Documentation/filesystems/ext4/directory.rst):
// blocks of ext4_dir_entry_2 records (inode, rec_len, name_len, file_type,
// name padded to 4 bytes). A record never crosses a block, and the last
// record of each block stretches to the block's end. The first block
// starts with "." and "..". No htree index is built: dir_index is not
// claimed, so every reader scans linearly.

// File types of directory entries (the filetype feature).
const (
	ftRegular = 1
	ftDir     = 2
	ftChar    = 3
	ftBlock   = 4
	ftFifo    = 5
	ftSocket  = 6
	ftSymlink = 7
)

// maxNameLen is EXT4_NAME_LEN: name_len is one byte.
const maxNameLen = 255

const direntHeader = 8

type dirent struct {
	name  string
	ino   uint32
	ftype uint8
}

func direntLen(nameLen int) int { return (direntHeader + nameLen + 3) &^ 3 }

// dotLen is the record length of "." and "..".
var dotLen = direntLen(2)

// dirBlockCount is the number of blocks marshalDir fills for entries.
func dirBlockCount(entries []dirent) uint32 {
	blocks, pos := 1, 2*dotLen
	for _, e := range entries {
		l := direntLen(len(e.name))
		if pos+l > blockSize {
			blocks++
			pos = 0
		}
		pos += l
	}
	return uint32(blocks)
}

// marshalDir returns the content of directory self (entries sorted) whose
// parent is parent, nblocks = dirBlockCount(entries) blocks long.
func marshalDir(self, parent uint32, entries []dirent, nblocks uint32) []byte {
	b := make([]byte, int(nblocks)*blockSize)
	putDirent(b[0:], self, ".", ftDir, dotLen)
	putDirent(b[dotLen:], parent, "..", ftDir, dotLen)
	last, pos := dotLen, 2*dotLen
	blockEnd := func(off int) int { return (off/blockSize + 1) * blockSize }
	for _, e := range entries {
		l := direntLen(len(e.name))
		if pos%blockSize+l > blockSize {
			setRecLen(b, last, blockEnd(last)-last)
			pos = blockEnd(last)
		}
		putDirent(b[pos:], e.ino, e.name, e.ftype, l)
		last = pos
		pos += l
	}
	setRecLen(b, last, blockEnd(last)-last)
	return b
}

func putDirent(b []byte, ino uint32, name string, ftype uint8, recLen int) {
	binary.LittleEndian.PutUint32(b[0:], ino)
	binary.LittleEndian.PutUint16(b[4:], uint16(recLen))
	b[6] = byte(len(name))
	b[7] = ftype
	copy(b[direntHeader:], name)
}

func setRecLen(b []byte, off, recLen int) {
	binary.LittleEndian.PutUint16(b[off+4:], uint16(recLen))
}
