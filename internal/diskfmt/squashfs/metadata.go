package squashfs

import (
	"encoding/binary"
	"fmt"
)

// Metadata blocks (squashfs.rst 3.2, squashfs_fs.h SQUASHFS_METADATA_SIZE):
// inodes, directories and the lookup tables are a byte stream cut into
// 8 KiB pieces, each compressed on its own and prefixed by a little-endian
// u16 holding the stored length, with bit 15 set when the piece is stored
// uncompressed (because compressing did not make it smaller). Entries may
// straddle two blocks. Other structures point into the stream with a
// "reference": (offset of the block's header from the table start) << 16
// | offset inside the uncompressed block.
const (
	metadataSize         = 8192
	metadataUncompressed = 1 << 15
)

// metaWriter accumulates one metadata stream (the inode table, the
// directory table, the xattr key/value table) in memory. Tables are small
// next to file data, so keeping them in memory until the data is written
// costs little and lets references be computed as entries are added.
type metaWriter struct {
	comp   compressor
	buf    []byte   // uncompressed bytes not yet cut into a block (< 8 KiB)
	out    []byte   // finished blocks, headers included
	starts []uint32 // offset in out of every finished block
	tmp    []byte
	err    error
}

func newMetaWriter(c compressor) *metaWriter {
	return &metaWriter{comp: c, buf: make([]byte, 0, 2*metadataSize)}
}

// ref returns the reference of the next byte to be written.
func (m *metaWriter) ref() uint64 {
	return uint64(len(m.out))<<16 | uint64(len(m.buf))
}

// pos returns the position of the next byte in the uncompressed stream.
func (m *metaWriter) pos() int64 {
	return int64(len(m.starts))*metadataSize + int64(len(m.buf))
}

// blockStart returns the offset (from the table start) of the block
// holding uncompressed stream position p. Valid for any p up to pos().
func (m *metaWriter) blockStart(p int64) uint32 {
	k := int(p / metadataSize)
	if k < len(m.starts) {
		return m.starts[k]
	}
	return uint32(len(m.out))
}

func (m *metaWriter) write(p []byte) {
	m.buf = append(m.buf, p...)
	if len(m.buf) < metadataSize {
		return
	}
	n := 0
	for ; len(m.buf)-n >= metadataSize; n += metadataSize {
		m.flush(m.buf[n : n+metadataSize])
	}
	m.buf = m.buf[:copy(m.buf, m.buf[n:])]
}

// flush compresses one block and appends it, header first.
func (m *metaWriter) flush(block []byte) {
	m.starts = append(m.starts, uint32(len(m.out)))
	out, err := m.comp.compress(m.tmp, block)
	if err != nil && m.err == nil {
		m.err = fmt.Errorf("compressing metadata block: %w", err)
	}
	m.tmp = out
	if err != nil || len(out) >= len(block) {
		m.out = binary.LittleEndian.AppendUint16(m.out, uint16(len(block))|metadataUncompressed)
		m.out = append(m.out, block...)
		return
	}
	m.out = binary.LittleEndian.AppendUint16(m.out, uint16(len(out)))
	m.out = append(m.out, out...)
}

// finish cuts the last, possibly short, block and returns the stream.
func (m *metaWriter) finish() ([]byte, error) {
	if len(m.buf) > 0 {
		m.flush(m.buf)
		m.buf = m.buf[:0]
	}
	return m.out, m.err
}

// lookupTable encodes a fixed-size-record table (fragment, export, id,
// xattr id tables; squashfs-tools-ng format.txt 2.3): the records as
// metadata blocks, then, uncompressed, the absolute position of every block
// as u64. base is the absolute position the blocks will be written at.
// It returns the bytes and the position of the u64 index, which is what
// the superblock points to.
func lookupTable(c compressor, records []byte, base int64) (data []byte, indexPos int64, err error) {
	m := newMetaWriter(c)
	m.write(records)
	blocks, err := m.finish()
	if err != nil {
		return nil, 0, err
	}
	data = append(make([]byte, 0, len(blocks)+8*len(m.starts)), blocks...)
	for _, s := range m.starts {
		data = binary.LittleEndian.AppendUint64(data, uint64(base)+uint64(s))
	}
	return data, base + int64(len(blocks)), nil
}
