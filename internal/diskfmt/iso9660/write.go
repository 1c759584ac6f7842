package iso9660

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Write lays img out and writes the whole image to w from offset 0,
// sequentially and including every zero byte, so that the result does not
// depend on what w held before (but w is not truncated: write to a new or
// empty file, or use WriteFile). File contents are streamed from their
// openers through a 1 MiB buffer. The image is Size(img) bytes long.
func Write(w io.WriterAt, img *Image) error {
	l, err := plan(img)
	if err != nil {
		return err
	}
	sw := &seqWriter{w: w, buf: make([]byte, 0, writeBuffer)}
	if err := l.write(sw); err != nil {
		return err
	}
	if err := sw.flush(); err != nil {
		return fmt.Errorf("iso9660: %w", err)
	}
	return nil
}

// WriteFile writes img to a new file at path (replacing any file there).
// On error the partial file is removed.
func WriteFile(path string, img *Image) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("iso9660: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("iso9660: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	return Write(f, img)
}

func (l *layout) write(sw *seqWriter) error {
	area, tail := l.systemArea()
	type blob struct {
		what string
		lba  int64
		data []byte
	}
	steps := []blob{
		{"system area", 0, area},
		{"primary volume descriptor", firstVDLBA, volumeDescriptor(l, false)},
	}
	if l.catalog != nil {
		steps = append(steps, blob{"El Torito boot record", int64(l.bootRecLBA), bootRecord(l.catalog.extent)})
	}
	if l.img.Joliet {
		steps = append(steps, blob{"Joliet volume descriptor", int64(l.svdLBA), volumeDescriptor(l, true)})
	}
	steps = append(steps, blob{"volume descriptor set terminator", int64(l.termLBA), terminator()})
	for _, s := range steps {
		if err := sw.writeAt(s.what, s.lba, s.data); err != nil {
			return err
		}
	}

	for _, t := range []struct {
		name string
		tree *treeLayout
	}{{"ISO 9660", &l.isoTree}, {"Joliet", &l.jolietTree}} {
		if len(t.tree.dirs) == 0 {
			continue
		}
		if err := sw.writeAt(t.name+" path table L", int64(t.tree.ptL), pathTableBytes(t.tree.pt, binary.LittleEndian)); err != nil {
			return err
		}
		if err := sw.writeAt(t.name+" path table M", int64(t.tree.ptM), pathTableBytes(t.tree.pt, binary.BigEndian)); err != nil {
			return err
		}
	}

	for _, d := range l.isoTree.dirs {
		if err := sw.writeAt("directory "+d.path, int64(d.extent), dirBytes(d.isoRecs, d.isoSize)); err != nil {
			return err
		}
	}
	if l.ceBlocks > 0 {
		ce := make([]byte, l.ceBlocks*BlockSize)
		for _, d := range l.isoTree.dirs {
			for _, r := range d.isoRecs {
				for i, a := range r.su.areas {
					off := int64(a.lba-l.ceLBA)*BlockSize + int64(a.offset)
					copy(ce[off:], r.su.areaBytes(i))
				}
			}
		}
		if err := sw.writeAt("Rock Ridge continuation areas", int64(l.ceLBA), ce); err != nil {
			return err
		}
	}
	for _, d := range l.jolietTree.dirs {
		if err := sw.writeAt("Joliet directory "+d.path, int64(d.jolExtent), dirBytes(d.jolRecs, d.jolSize)); err != nil {
			return err
		}
	}
	if l.catalog != nil {
		if err := sw.writeAt("El Torito boot catalog", int64(l.catalog.extent), l.catalog.data); err != nil {
			return err
		}
	}
	for _, f := range l.files {
		if err := sw.seek(int64(f.extent)); err != nil {
			return fmt.Errorf("iso9660: %s: %w", f.path, err)
		}
		if err := writeContent(sw, f); err != nil {
			return fmt.Errorf("iso9660: %s: %w", f.path, err)
		}
	}
	if l.espAppended {
		if err := sw.seek(int64(l.espLBA)); err != nil {
			return fmt.Errorf("iso9660: appended EFI image: %w", err)
		}
		if _, err := io.Copy(sw, io.NewSectionReader(l.img.EFIBoot.Image, 0, l.img.EFIBoot.Size)); err != nil {
			return fmt.Errorf("iso9660: appended EFI image: %w", err)
		}
	}
	if tail != nil {
		if err := sw.writeAt("backup GPT", l.totalBlocks-gptTailBlocks, tail); err != nil {
			return err
		}
	}
	if err := sw.seek(l.totalBlocks); err != nil {
		return fmt.Errorf("iso9660: end of image: %w", err)
	}
	return nil
}

// writeContent streams one file's data, which must be exactly its size.
func writeContent(sw *seqWriter, n *node) error {
	if n.data != nil {
		_, err := sw.Write(n.data)
		return err
	}
	r, err := n.open()
	if err != nil {
		return err
	}
	defer r.Close()
	copied, err := io.CopyN(sw, r, n.size)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("content ended after %d of %d bytes (file changed since the image was planned?)", copied, n.size)
		}
		return err
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return fmt.Errorf("content is longer than its size, %d bytes (file changed since the image was planned?)", n.size)
	}
	return nil
}

const writeBuffer = 1 << 20

// seqWriter writes an io.WriterAt front to back through a buffer, filling
// gaps with zeros, and refuses to go backwards: a layout bug shows as an
// error rather than as overwritten data.
type seqWriter struct {
	w   io.WriterAt
	off int64 // file offset of buf[0]
	buf []byte
}

func (s *seqWriter) pos() int64 { return s.off + int64(len(s.buf)) }

func (s *seqWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), cap(s.buf)-len(s.buf))
		s.buf = append(s.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(s.buf) == cap(s.buf) {
			if err := s.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (s *seqWriter) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	if _, err := s.w.WriteAt(s.buf, s.off); err != nil {
		return err
	}
	s.off += int64(len(s.buf))
	s.buf = s.buf[:0]
	return nil
}

var zeroBlock [BlockSize]byte

// seek zero-fills up to block lba.
func (s *seqWriter) seek(lba int64) error {
	target := lba * BlockSize
	if target < s.pos() {
		return fmt.Errorf("layout error: block %d is behind the write position %d", lba, s.pos())
	}
	for s.pos() < target {
		k := min(target-s.pos(), BlockSize)
		if _, err := s.Write(zeroBlock[:k]); err != nil {
			return err
		}
	}
	return nil
}

func (s *seqWriter) writeAt(what string, lba int64, data []byte) error {
	if err := s.seek(lba); err != nil {
		return fmt.Errorf("iso9660: %s: %w", what, err)
	}
	if _, err := s.Write(data); err != nil {
		return fmt.Errorf("iso9660: %s: %w", what, err)
	}
	return nil
}
