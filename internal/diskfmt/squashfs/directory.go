package squashfs

import (
	"encoding/binary"
	"fmt"
)

// Directory listings (squashfs.rst 3.3, squashfs_fs.h struct
// squashfs_dir_header / squashfs_dir_entry) live in the directory table:
// runs of entries, each run preceded by a header
// {u32 count-1, u32 inode table block, u32 base inode number}; an entry is
// {u16 offset of the inode in that block, s16 inode number - base,
// u16 basic type, u16 name length-1, name}. Entries are sorted by name.
//
// A new run starts when the inode block changes, after 256 entries
// (SQUASHFS_DIR_COUNT, enforced by the kernel), when the inode number
// delta would not fit in 16 bits, and when the listing crosses into a new
// directory-table metadata block. The last rule feeds the directory index
// of extended directory inodes: one index entry per run that starts in a
// new metadata block, {u32 offset of the run's header in the listing,
// u32 directory-table block holding it, u32 name length-1, first name},
// which lets the kernel's lookup decompress one block of a large
// directory instead of all of them.
const dirMaxRun = 256

type dirIndex struct {
	index uint32
	start uint32
	name  string
}

// writeDirectory appends d's listing to the directory table. All entries'
// inodes must already be in the inode table (their refs are final).
func writeDirectory(dw *metaWriter, d *inode) (dirLayout, error) {
	startPos := dw.pos()
	l := dirLayout{startBlock: dw.blockStart(startPos), offset: uint16(startPos % metadataSize)}
	if len(d.entries) == 0 {
		l.size = 3
		return l, nil
	}
	le := binary.LittleEndian
	var (
		buf        []byte
		hdrAt      = -1 // offset of the current header in buf
		count      int
		hdrBlock   uint64 // inode table block of the current run
		base       uint32
		entryMB    int64 // directory metadata block of the run's first entry
		lastIdxMB  = startPos / metadataSize
		indexPos   []int64 // stream position of each indexed header
		indexNames []string
	)
	closeRun := func() {
		if hdrAt >= 0 {
			le.PutUint32(buf[hdrAt:], uint32(count-1))
		}
	}
	for _, e := range d.entries {
		if !e.ino.written {
			return l, fmt.Errorf("internal error: %s listed before its inode was written", e.ino.path)
		}
		block, off := e.ino.ref>>16, uint16(e.ino.ref&0xffff)
		delta := int64(e.ino.number) - int64(base)
		here := startPos + int64(len(buf))
		if hdrAt < 0 || count == dirMaxRun || block != hdrBlock ||
			delta < -32768 || delta > 32767 || here/metadataSize != entryMB {
			closeRun()
			hdrAt = len(buf)
			hdrMB := (startPos + int64(hdrAt)) / metadataSize
			if hdrMB != lastIdxMB {
				indexPos = append(indexPos, startPos+int64(hdrAt))
				indexNames = append(indexNames, e.name)
				lastIdxMB = hdrMB
			}
			count, hdrBlock, base, delta = 0, block, e.ino.number, 0
			buf = le.AppendUint32(buf, 0) // count, patched by closeRun
			buf = le.AppendUint32(buf, uint32(block))
			buf = le.AppendUint32(buf, base)
			entryMB = (startPos + int64(len(buf))) / metadataSize
		}
		buf = le.AppendUint16(buf, off)
		buf = le.AppendUint16(buf, uint16(int16(delta)))
		buf = le.AppendUint16(buf, uint16(e.ino.kind))
		buf = le.AppendUint16(buf, uint16(len(e.name)-1))
		buf = append(buf, e.name...)
		count++
	}
	closeRun()
	if uint64(len(buf))+3 > 0xffffffff {
		return l, fmt.Errorf("%s: directory listing too large", d.path)
	}
	dw.write(buf)
	// Every indexed header now lies in a block whose start is known: the
	// blocks up to the one being filled.
	for i, p := range indexPos {
		l.index = append(l.index, dirIndex{
			index: uint32(p - startPos),
			start: dw.blockStart(p),
			name:  indexNames[i],
		})
	}
	if len(l.index) > 0xffff {
		return l, fmt.Errorf("%s: directory index too large", d.path)
	}
	l.size = uint32(len(buf)) + 3
	return l, nil
}
