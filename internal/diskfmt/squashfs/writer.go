package squashfs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/kairos-io/kairos/internal/fstree"
)

// output tracks the position in the image (relative to its start) while
// buffering small writes.
type output struct {
	bw  *bufio.Writer
	pos int64
}

func (o *output) write(b []byte) error {
	n, err := o.bw.Write(b)
	o.pos += int64(n)
	if err != nil {
		return fmt.Errorf("squashfs: writing image: %w", err)
	}
	return nil
}

// Write writes a squashfs 4.0 image of the tree rooted at root to w,
// starting at w's current offset, and leaves w positioned after the image.
// The image is a pure function of the tree (names, metadata, content) and
// opt, Workers and Progress aside: the same input gives the same bytes.
//
// w must be seekable because the superblock, written first, points at
// tables that are only known at the end; it is filled in last.
func Write(w io.WriteSeeker, root *fstree.Node, opt Options) (Stats, error) {
	return WriteContext(context.Background(), w, root, opt)
}

// WriteContext is Write with cancellation: it stops reading and
// compressing soon after ctx is done and returns ctx's error.
func WriteContext(ctx context.Context, w io.WriteSeeker, root *fstree.Node, opt Options) (Stats, error) {
	s, err := opt.validate()
	if err != nil {
		return Stats{}, err
	}
	t, err := buildTree(root)
	if err != nil {
		return Stats{}, err
	}
	base, err := w.Seek(0, io.SeekCurrent)
	if err != nil {
		return Stats{}, fmt.Errorf("squashfs: output is not seekable: %w", err)
	}
	out := &output{bw: bufio.NewWriterSize(w, 1<<20)}
	// Placeholder for the superblock; no compressor options follow
	// (defaults only), so data starts right after it.
	if err := out.write(make([]byte, superblockSize)); err != nil {
		return Stats{}, err
	}

	p, err := newPipeline(s, t, out)
	if err != nil {
		return Stats{}, err
	}
	if err := p.run(ctx); err != nil {
		return Stats{}, err
	}
	if s.progress != nil && t.stats.DataBytes == 0 {
		s.progress(0, 0)
	}

	meta, err := s.codec.newCompressor(s.level, metadataSize)
	if err != nil {
		return Stats{}, fmt.Errorf("squashfs: %w", err)
	}
	sb := superblock{
		inodes:      uint32(len(t.inodes)),
		mkfsTime:    s.mkfsTime,
		blockSize:   uint32(s.blockSize),
		fragments:   uint32(len(p.frags)),
		compression: s.codec.id,
		blockLog:    s.blockLog,
		noIDs:       uint16(len(t.ids.ids)),
	}
	if err := writeTables(t, &sb, s, meta, p.frags, out); err != nil {
		return Stats{}, err
	}
	if err := out.bw.Flush(); err != nil {
		return Stats{}, fmt.Errorf("squashfs: writing image: %w", err)
	}
	if _, err := w.Seek(base, io.SeekStart); err != nil {
		return Stats{}, fmt.Errorf("squashfs: seeking to the superblock: %w", err)
	}
	if _, err := w.Write(sb.marshal()); err != nil {
		return Stats{}, fmt.Errorf("squashfs: writing superblock: %w", err)
	}
	if _, err := w.Seek(base+out.pos, io.SeekStart); err != nil {
		return Stats{}, fmt.Errorf("squashfs: seeking to the image end: %w", err)
	}

	st := t.stats
	st.DataBlocks = p.dataBlocks
	st.SparseBlocks = p.sparseBlocks
	st.CachedBlocks = int(p.cacheHits.Load())
	st.FragmentBlocks = p.fragmentBlocks
	st.DuplicateFiles = p.dupFiles
	st.DuplicateBytes = p.dupBytes
	st.BytesUsed = int64(sb.bytesUsed)
	st.ImageSize = out.pos
	return st, nil
}

// WriteFile writes the image to path (created or truncated, mode 0644).
// On error the partial file is removed.
func WriteFile(path string, root *fstree.Node, opt Options) (st Stats, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return Stats{}, fmt.Errorf("squashfs: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("squashfs: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	return Write(f, root, opt)
}

// writeTables writes, after the data, the inode table, directory table,
// fragment table, export table, id table and xattr table, in the order the
// kernel insists on (each table's sanity check uses the next one's start
// as its end), fills sb, and pads the image to 4 KiB.
func writeTables(t *tree, sb *superblock, s settings, meta compressor, frags []fragmentEntry, out *output) error {
	inodes, dirs, err := buildInodeAndDirTables(t, meta)
	if err != nil {
		return err
	}
	sb.rootInode = t.root.ref

	sb.inodeTableStart = uint64(out.pos)
	if err := out.write(inodes); err != nil {
		return err
	}
	sb.directoryTableStart = uint64(out.pos)
	if err := out.write(dirs); err != nil {
		return err
	}

	table := func(name string, records []byte) (uint64, error) {
		data, index, err := lookupTable(meta, records, out.pos)
		if err != nil {
			return 0, fmt.Errorf("squashfs: %s table: %w", name, err)
		}
		return uint64(index), out.write(data)
	}
	sb.fragmentTableStart = invalidTable
	if len(frags) > 0 {
		if sb.fragmentTableStart, err = table("fragment", fragmentRecords(frags)); err != nil {
			return err
		}
	}
	sb.lookupTableStart = invalidTable
	if s.exportable {
		sb.flags |= flagExportable
		if sb.lookupTableStart, err = table("export", exportRecords(t)); err != nil {
			return err
		}
	}
	if sb.idTableStart, err = table("id", t.ids.records()); err != nil {
		return err
	}
	sb.xattrIDTableStart = invalidTable
	if len(t.xattrs.ids) > 0 {
		data, header, err := t.xattrs.encode(meta, out.pos)
		if err != nil {
			return fmt.Errorf("squashfs: %w", err)
		}
		sb.xattrIDTableStart = uint64(header)
		if err := out.write(data); err != nil {
			return err
		}
	} else {
		sb.flags |= flagNoXattrs
	}
	if s.dedupe {
		sb.flags |= flagDuplicates
	}
	if !s.fragments {
		sb.flags |= flagNoFragments
	}
	sb.bytesUsed = uint64(out.pos)
	if pad := out.pos % devBlockSize; pad != 0 {
		return out.write(make([]byte, devBlockSize-pad))
	}
	return nil
}

// buildInodeAndDirTables writes every inode and directory listing into the
// two metadata streams. Order: for each directory, its subdirectories
// (recursively), then its other entries' inodes, then its listing, which
// needs all its entries' inode references, then its own inode, which needs
// the listing's position. This is the order buildTree numbered inodes in.
func buildInodeAndDirTables(t *tree, meta compressor) (inodes, dirs []byte, err error) {
	iw, dw := newMetaWriter(meta), newMetaWriter(meta)
	var buf []byte
	var next uint32
	put := func(ino *inode, l dirLayout) error {
		next++
		if ino.number != next {
			return fmt.Errorf("squashfs: internal error: inode %s numbered %d, written as %d", ino.path, ino.number, next)
		}
		ino.ref, ino.written = iw.ref(), true
		switch ino.kind {
		case kindDir:
			buf = appendDirInode(buf[:0], ino, l)
		case kindFile:
			buf = appendFileInode(buf[:0], ino)
		default:
			buf = appendOtherInode(buf[:0], ino)
		}
		iw.write(buf)
		return nil
	}
	var walk func(d *inode) error
	walk = func(d *inode) error {
		for _, e := range d.entries {
			if e.ino.kind == kindDir {
				if err := walk(e.ino); err != nil {
					return err
				}
			}
		}
		for _, e := range d.entries {
			if e.ino.kind != kindDir && !e.ino.written {
				if err := put(e.ino, dirLayout{}); err != nil {
					return err
				}
			}
		}
		l, err := writeDirectory(dw, d)
		if err != nil {
			return fmt.Errorf("squashfs: %w", err)
		}
		return put(d, l)
	}
	if err := walk(t.root); err != nil {
		return nil, nil, err
	}
	if inodes, err = iw.finish(); err != nil {
		return nil, nil, fmt.Errorf("squashfs: inode table: %w", err)
	}
	if dirs, err = dw.finish(); err != nil {
		return nil, nil, fmt.Errorf("squashfs: directory table: %w", err)
	}
	return inodes, dirs, nil
}
