package squashfs

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"io"
	"os"
	"testing"
)

// imageReader is a minimal squashfs reader for white-box checks of gzip
// images; the judges of correctness are unsquashfs and the kernel.
type imageReader struct {
	b          []byte
	inodeTable uint64
	dirTable   uint64
	root       uint64
}

func readImage(t *testing.T, path string) *imageReader {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if le.Uint32(b) != sqMagic || le.Uint16(b[20:]) != compZlib {
		t.Fatalf("%s: not a gzip squashfs image", path)
	}
	return &imageReader{b: b, root: le.Uint64(b[32:]), inodeTable: le.Uint64(b[64:]), dirTable: le.Uint64(b[72:])}
}

func (r *imageReader) rootRef() uint64 { return r.root }

// meta returns n bytes of the metadata stream of the table at start,
// beginning at reference ref.
func (r *imageReader) meta(t *testing.T, start, ref uint64, n int) []byte {
	t.Helper()
	pos := start + ref>>16
	off := int(ref & 0xffff)
	var out []byte
	for len(out) < off+n {
		h := binary.LittleEndian.Uint16(r.b[pos:])
		size := uint64(h & 0x7fff)
		block := r.b[pos+2 : pos+2+size]
		if h&metadataUncompressed == 0 {
			zr, err := zlib.NewReader(bytes.NewReader(block))
			if err != nil {
				t.Fatal(err)
			}
			if block, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, block...)
		pos += 2 + size
	}
	return out[off : off+n]
}

// dirInfo returns a directory inode's type, listing position and size.
func (r *imageReader) dirInfo(t *testing.T, ref uint64) (typ uint16, listing uint64, size uint32, icount uint16) {
	t.Helper()
	le := binary.LittleEndian
	b := r.meta(t, r.inodeTable, ref, 40)
	typ = le.Uint16(b)
	switch typ {
	case 1:
		return typ, uint64(le.Uint32(b[16:]))<<16 | uint64(le.Uint16(b[26:])), uint32(le.Uint16(b[24:])), 0
	case 8:
		return typ, uint64(le.Uint32(b[24:]))<<16 | uint64(le.Uint16(b[34:])), le.Uint32(b[20:]), le.Uint16(b[32:])
	}
	t.Fatalf("inode at %#x is not a directory (type %d)", ref, typ)
	return
}

func (r *imageReader) dirIndexCount(t *testing.T, ref uint64) (uint16, int) {
	typ, _, _, icount := r.dirInfo(t, ref)
	return typ, int(icount)
}

// lookup returns the inode reference of name in the directory at ref.
func (r *imageReader) lookup(t *testing.T, ref uint64, name string) uint64 {
	t.Helper()
	le := binary.LittleEndian
	_, listing, size, _ := r.dirInfo(t, ref)
	b := r.meta(t, r.dirTable, listing, int(size)-3)
	for len(b) > 0 {
		count, block := le.Uint32(b)+1, le.Uint32(b[4:])
		b = b[12:]
		for ; count > 0; count-- {
			off, nlen := le.Uint16(b), int(le.Uint16(b[6:]))+1
			if string(b[8:8+nlen]) == name {
				return uint64(block)<<16 | uint64(off)
			}
			b = b[8+nlen:]
		}
	}
	t.Fatalf("%s not found", name)
	return 0
}
