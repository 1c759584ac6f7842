package ext4

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kairos-io/kairos/internal/fstree"
)

// Options controls Write. The zero value is valid: no label, UUID derived
// from the (empty) label, the smallest size that holds the tree, times 0.
type Options struct {
	// Label is the volume label, at most 16 bytes.
	Label string
	// UUID is the volume UUID; zero derives one from Label (UUIDv5 in a
	// namespace of this package), so that the same label gives the same
	// UUID and images are reproducible.
	UUID [16]byte
	// Size is the file system size in bytes, rounded down to the 4 KiB
	// block size; 0 means RequiredSize + Headroom. A last block group too
	// short to hold its own metadata is left out, as mke2fs does, so the
	// file system (Stats.Size) can end a few blocks before Size.
	Size int64
	// Headroom is free space added to RequiredSize when Size is 0.
	Headroom int64
	// ModTime stamps the superblock (creation, write, mount and check
	// times), lost+found when the tree has none, the root when root is
	// nil, and the journal inode. The zero Time means the Unix epoch. It is
	// never taken from the clock: pass SOURCE_DATE_EPOCH for reproducible
	// builds. Tree entries keep their own Node.ModTime.
	ModTime time.Time
	// Journal adds an internal JBD2 journal (has_journal) in inode 8,
	// contiguous, sized from the file system size like mke2fs's default
	// but at most 64 MiB (see journalBlocksFor), and smaller, down to the
	// 4 MiB minimum, when the space left does not allow that.
	Journal bool
	// Progress, if set, is called as file content is written, with the
	// bytes done so far and the total (hardlinked content counted once).
	Progress func(done, total int64)
}

// Stats describes the file system written.
type Stats struct {
	Size       int64 // bytes: Blocks * BlockSize
	BlockSize  int
	Blocks     uint64
	FreeBlocks uint64
	Inodes     uint32
	FreeInodes uint32
	// Files is the number of inodes holding the tree: root, lost+found
	// and every entry, hardlinked names counted once.
	Files int
}

// RequiredSize is the smallest file system, in bytes, that holds root with
// these options (Size, Headroom and Progress are ignored): callers use it
// to size partitions before writing anything. At that size there are no
// free inodes or blocks left, and a journal has its minimum size.
func RequiredSize(root *fstree.Node, opt Options) (int64, error) {
	t, err := newTree(root, modTime(opt))
	if err != nil {
		return 0, fmt.Errorf("ext4: %w", err)
	}
	blocks, err := t.requiredBlocks(opt.Journal)
	if err != nil {
		return 0, fmt.Errorf("ext4: %w", err)
	}
	return int64(blocks) * blockSize, nil
}

// Write writes an ext4 file system holding root at offset 0 of w (use
// io.NewOffsetWriter for a partition inside a disk image). root may be nil
// or an empty directory for an empty file system; its own mode, owner and
// time apply to the root directory.
//
// Only metadata and data blocks that are not all zero are written: w must
// read as zero where nothing is written, as a file freshly truncated to
// the size does (and stays sparse on the host). When w is an *os.File
// shorter than the file system, it is extended to the file system size.
//
// Everything is planned before the first write: a Size below RequiredSize
// fails without writing anything.
func Write(w io.WriterAt, root *fstree.Node, opt Options) (Stats, error) {
	j, err := prepare(root, opt)
	if err != nil {
		return Stats{}, err
	}
	return j.write(w)
}

// WriteFile creates or truncates path to the file system size and writes
// the file system into it; on error the file is removed.
func WriteFile(path string, root *fstree.Node, opt Options) (st Stats, err error) {
	j, err := prepare(root, opt)
	if err != nil {
		return Stats{}, err
	}
	f, err := os.Create(path)
	if err != nil {
		return Stats{}, fmt.Errorf("ext4: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("ext4: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if err := f.Truncate(int64(j.p.geo.blocks) * blockSize); err != nil {
		return Stats{}, fmt.Errorf("ext4: %w", err)
	}
	return j.write(f)
}

func modTime(opt Options) int64 {
	if opt.ModTime.IsZero() {
		return 0
	}
	return opt.ModTime.Unix()
}

// job is a planned file system, ready to be written.
type job struct {
	t        *tree
	p        *plan
	opt      Options
	label    [16]byte
	uuid     [16]byte
	modTime  int64
	progress func(done, total int64)
}

func prepare(root *fstree.Node, opt Options) (*job, error) {
	j := &job{opt: opt, modTime: modTime(opt), uuid: opt.UUID, progress: opt.Progress}
	if len(opt.Label) > len(j.label) {
		return nil, fmt.Errorf("ext4: label %q is longer than %d bytes", opt.Label, len(j.label))
	}
	copy(j.label[:], opt.Label)
	if j.uuid == ([16]byte{}) {
		j.uuid = uuidV5(uuidNamespace, opt.Label)
	}
	if opt.Size < 0 || opt.Headroom < 0 {
		return nil, fmt.Errorf("ext4: negative size (%d) or headroom (%d)", opt.Size, opt.Headroom)
	}
	t, err := newTree(root, j.modTime)
	if err != nil {
		return nil, fmt.Errorf("ext4: %w", err)
	}
	j.t = t
	blocks := uint64(opt.Size) / blockSize
	if opt.Size == 0 {
		req, err := t.requiredBlocks(opt.Journal)
		if err != nil {
			return nil, fmt.Errorf("ext4: %w", err)
		}
		blocks = req + uint64(opt.Headroom)/blockSize
	}
	if blocks > maxBlocks {
		return nil, fmt.Errorf("ext4: size of %d bytes exceeds the 16 TiB that 32-bit block numbers address", blocks*blockSize)
	}
	p, err := t.fit(blocks, opt.Journal)
	if errors.Is(err, errNoSpace) {
		req, rerr := t.requiredBlocks(opt.Journal)
		if rerr != nil {
			return nil, fmt.Errorf("ext4: %w", rerr)
		}
		return nil, fmt.Errorf("ext4: size %.2f MiB is too small: the tree needs at least %.2f MiB",
			mib(blocks*blockSize), mib(req*blockSize))
	}
	if err != nil {
		return nil, fmt.Errorf("ext4: %w", err)
	}
	j.p = p
	return j, nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func (j *job) write(w io.WriterAt) (Stats, error) {
	g := &j.p.geo
	size := int64(g.blocks) * blockSize
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() < size {
			if err := f.Truncate(size); err != nil {
				return Stats{}, fmt.Errorf("ext4: extending the image to %d bytes: %w", size, err)
			}
		}
	}
	bw := newBlockWriter(w)
	st, err := j.writeMetadata(bw)
	if err != nil {
		return Stats{}, fmt.Errorf("ext4: %w", err)
	}
	if err := j.writeData(bw); err != nil {
		return Stats{}, fmt.Errorf("ext4: %w", err)
	}
	if err := bw.flush(); err != nil {
		return Stats{}, fmt.Errorf("ext4: %w", err)
	}
	return st, nil
}

// journalInode is inode 8 when there is a journal.
func (j *job) journalInode() *inode {
	return &inode{ino: journalIno, kind: kindFile, perm: 0o600, links: 1, mtime: j.modTime,
		size: uint64(j.p.journalBlocks) * blockSize, blocks: j.p.journalBlocks}
}

// rawInodeOf builds the on-disk inode of in placed at pl.
func rawInodeOf(in *inode, pl *placement) rawInode {
	r := rawInode{
		mode:  in.mode(),
		uid:   in.uid,
		gid:   in.gid,
		size:  in.size,
		links: uint16(in.links),
		time:  in.mtime,
	}
	switch {
	case in.usesExtents():
		r.flags |= extentsFlag
		r.block, _ = buildExtentTree(pl.extents, pl.tree)
	case in.kind == kindSymlink:
		copy(r.block[:], in.target)
	case in.kind == kindChar || in.kind == kindBlock:
		encodeDevice(r.block[:], in.major, in.minor)
	}
	blocks := uint64(in.blocks) + uint64(len(pl.tree))
	if len(in.xattrs.list) > 0 {
		if in.xattrs.inInode {
			r.xattrsInInode = in.xattrs.list
		} else {
			r.xattrBlock = pl.xattrBlock
			blocks++
		}
	}
	r.sectors = blocks * sectorsPerBlk
	return r
}

// writeMetadata writes, group by group, the superblock and descriptor
// copies, the bitmaps and the used part of the inode tables.
func (j *job) writeMetadata(bw *blockWriter) (Stats, error) {
	g := &j.p.geo
	t := j.t
	byIno := make([]*inode, t.maxIno+1)
	for _, in := range t.order {
		byIno[in.ino] = in
	}
	var jnl *inode
	if j.opt.Journal {
		jnl = j.journalInode()
		byIno[journalIno] = jnl
	}

	descs := make([]groupDesc, g.groups)
	var freeBlocks uint64
	var freeInodes uint32
	for i := range g.groups {
		d := &descs[i]
		d.blockBitmap, d.inodeBitmap, d.inodeTable = g.blockBitmap(i), g.inodeBitmap(i), g.inodeTable(i)
		d.freeBlocks = g.groupBlocks(i) - g.overhead(i) - j.p.alloc.used(i)
		d.freeInodes = g.inodesPerGroup - j.usedInodes(i)
		freeBlocks += uint64(d.freeBlocks)
		freeInodes += d.freeInodes
	}
	for _, in := range t.order {
		if in.kind == kindDir {
			grp, _ := g.inodeGroup(in.ino)
			descs[grp].usedDirs++
		}
	}

	sb := superblock{geo: *g, freeBlocks: freeBlocks, freeInodes: freeInodes, time: uint64(max(0, min(j.modTime, 1<<40-1))),
		label: j.label, uuid: j.uuid, hashSeed: hashSeedFor(j.uuid), journal: jnl != nil}
	if jnl != nil {
		r := rawInodeOf(jnl, &j.p.journal)
		copy8to32(sb.journalBlock[:], r.block[:])
		sb.journalSize = jnl.size
	}
	gdt := marshalGDT(g, descs)

	for i := range g.groups {
		start := int64(g.groupStart(i)) * blockSize
		if hasSuper(i) {
			if i == 0 {
				if err := bw.writeAt(sb.marshal(i), superblockOffset); err != nil {
					return Stats{}, err
				}
			} else if err := bw.writeAt(sb.marshal(i), start); err != nil {
				return Stats{}, err
			}
			if err := bw.writeAt(gdt, start+blockSize); err != nil {
				return Stats{}, err
			}
		}
		bb := prefixBitmap(g.overhead(i)+j.p.alloc.used(i), g.groupBlocks(i))
		if err := bw.writeAt(bb, int64(g.blockBitmap(i))*blockSize); err != nil {
			return Stats{}, err
		}
		used := j.usedInodes(i)
		if ib := prefixBitmap(used, g.inodesPerGroup); !allZero(ib) {
			if err := bw.writeAt(ib, int64(g.inodeBitmap(i))*blockSize); err != nil {
				return Stats{}, err
			}
		}
		if used == 0 {
			continue
		}
		table := make([]byte, (int(used)+inodesPerBlock-1)/inodesPerBlock*blockSize)
		first := i*g.inodesPerGroup + 1
		for k := range used {
			in := byIno[first+k]
			if in == nil {
				continue // reserved inode: all zero
			}
			pl := &j.p.journal
			if in != jnl {
				pl = &j.p.place[in.seq]
			}
			r := rawInodeOf(in, pl)
			r.marshal(table[int(k)*inodeSize:])
		}
		if err := bw.writeAt(table, int64(g.inodeTable(i))*blockSize); err != nil {
			return Stats{}, err
		}
	}
	return Stats{
		Size:       int64(g.blocks) * blockSize,
		BlockSize:  blockSize,
		Blocks:     uint64(g.blocks),
		FreeBlocks: freeBlocks,
		Inodes:     g.inodes(),
		FreeInodes: freeInodes,
		Files:      len(t.order),
	}, nil
}

// usedInodes is the number of inodes in use in group i: inodes are
// numbered densely from 1 (the reserved ones count as used) to maxIno.
func (j *job) usedInodes(i uint32) uint32 {
	g := &j.p.geo
	first := i * g.inodesPerGroup
	if j.t.maxIno <= first {
		return 0
	}
	return min(g.inodesPerGroup, j.t.maxIno-first)
}

func copy8to32(dst []uint32, src []byte) {
	for i := range dst {
		dst[i] = uint32(src[4*i]) | uint32(src[4*i+1])<<8 | uint32(src[4*i+2])<<16 | uint32(src[4*i+3])<<24
	}
}

// writeData writes the journal superblock, then every inode's blocks in
// allocation order (attribute block, data, extent tree), so that the
// writes are sequential.
func (j *job) writeData(bw *blockWriter) error {
	if j.opt.Journal {
		if err := bw.writeAt(marshalJournalSuper(j.uuid, j.p.journalBlocks), int64(j.p.journal.extents[0].start)*blockSize); err != nil {
			return fmt.Errorf("writing the journal: %w", err)
		}
		if err := writeTree(bw, &j.p.journal); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	fw := &fileWriter{bw: bw, total: j.t.contentBytes, progress: j.progress}
	for _, in := range j.t.order {
		pl := &j.p.place[in.seq]
		if pl.xattrBlock != 0 {
			if err := bw.writeAt(marshalXattrBlock(in.xattrs.list), int64(pl.xattrBlock)*blockSize); err != nil {
				return fmt.Errorf("%s: writing xattrs: %w", in.path, err)
			}
		}
		var err error
		switch in.kind {
		case kindDir:
			err = writeExtents(bw, pl.extents, 0, marshalDir(in.ino, in.parent, in.entries, in.blocks))
		case kindSymlink:
			if in.blocks > 0 {
				b := make([]byte, blockSize)
				copy(b, in.target)
				err = writeExtents(bw, pl.extents, 0, b)
			}
		case kindFile:
			err = fw.write(in, pl)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", in.path, err)
		}
		if err := writeTree(bw, pl); err != nil {
			return fmt.Errorf("%s: %w", in.path, err)
		}
	}
	return nil
}

// writeTree writes the extent tree blocks of pl, if it has any.
func writeTree(bw *blockWriter, pl *placement) error {
	if len(pl.tree) == 0 {
		return nil
	}
	_, nodes := buildExtentTree(pl.extents, pl.tree)
	for k, node := range nodes {
		if err := bw.writeAt(node, int64(pl.tree[k])*blockSize); err != nil {
			return fmt.Errorf("writing extent tree: %w", err)
		}
	}
	return nil
}

// writeExtents writes data, which starts at logical block first of a file
// mapped by exts, leaving out all-zero blocks.
func writeExtents(bw *blockWriter, exts []extent, first uint32, data []byte) error {
	for _, e := range exts {
		if e.logical+e.length <= first {
			continue
		}
		if len(data) == 0 {
			break
		}
		skip := first - e.logical // first >= e.logical: exts are ascending and data contiguous
		n := min(uint32(len(data)/blockSize), e.length-skip)
		if err := writeNonZero(bw, data[:int(n)*blockSize], int64(e.start+skip)*blockSize); err != nil {
			return err
		}
		data = data[int(n)*blockSize:]
		first += n
	}
	if len(data) > 0 {
		return fmt.Errorf("internal error: %d bytes beyond the allocated blocks", len(data))
	}
	return nil
}

var zeroBlock = make([]byte, blockSize)

func allZero(b []byte) bool {
	for len(b) >= blockSize {
		if !bytes.Equal(b[:blockSize], zeroBlock) {
			return false
		}
		b = b[blockSize:]
	}
	return bytes.Equal(b, zeroBlock[:len(b)])
}

// writeNonZero writes the runs of blocks of data that are not all zero.
func writeNonZero(bw *blockWriter, data []byte, off int64) error {
	for len(data) > 0 {
		// Skip zero blocks, then take the run of non-zero ones.
		z := 0
		for z < len(data) && bytes.Equal(data[z:z+blockSize], zeroBlock) {
			z += blockSize
		}
		nz := z
		for nz < len(data) && !bytes.Equal(data[nz:nz+blockSize], zeroBlock) {
			nz += blockSize
		}
		if nz > z {
			if err := bw.writeAt(data[z:nz], off+int64(z)); err != nil {
				return err
			}
		}
		off += int64(nz)
		data = data[nz:]
	}
	return nil
}

// fileWriter streams regular files' content.
type fileWriter struct {
	bw       *blockWriter
	buf      []byte
	done     int64
	total    int64
	progress func(done, total int64)
}

const readChunk = 1 << 20

func (fw *fileWriter) write(in *inode, pl *placement) error {
	if in.size == 0 {
		return nil
	}
	rc, err := in.node.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if fw.buf == nil {
		fw.buf = make([]byte, readChunk)
	}
	var logical uint32
	for left := in.size; left > 0; {
		n := min(uint64(len(fw.buf)), left)
		chunk := fw.buf[:n]
		if _, err := io.ReadFull(rc, chunk); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("content ends before its declared size of %d bytes", in.size)
			}
			return fmt.Errorf("reading: %w", err)
		}
		padded := (n + blockSize - 1) / blockSize * blockSize
		clear(fw.buf[n:padded]) // the tail of the last block reads as zero
		if err := writeExtents(fw.bw, pl.extents, logical, fw.buf[:padded]); err != nil {
			return fmt.Errorf("writing: %w", err)
		}
		logical += uint32(padded / blockSize)
		left -= n
		fw.done += int64(n)
		if fw.progress != nil {
			fw.progress(fw.done, fw.total)
		}
	}
	var extra [1]byte
	if n, _ := io.ReadFull(rc, extra[:]); n > 0 {
		return fmt.Errorf("content is longer than its declared size of %d bytes", in.size)
	}
	return nil
}

// blockWriter merges writes to consecutive offsets into large ones: most
// of what is written (metadata of a group, small files allocated one after
// the other) is contiguous.
type blockWriter struct {
	w   io.WriterAt
	buf []byte
	off int64
}

const writeBuffer = 4 << 20

func newBlockWriter(w io.WriterAt) *blockWriter {
	return &blockWriter{w: w, buf: make([]byte, 0, writeBuffer)}
}

func (bw *blockWriter) writeAt(p []byte, off int64) error {
	if len(bw.buf) > 0 && off == bw.off+int64(len(bw.buf)) && len(bw.buf)+len(p) <= cap(bw.buf) {
		bw.buf = append(bw.buf, p...)
		return nil
	}
	if err := bw.flush(); err != nil {
		return err
	}
	if len(p) >= cap(bw.buf)/2 {
		_, err := bw.w.WriteAt(p, off)
		return err
	}
	bw.buf, bw.off = append(bw.buf, p...), off
	return nil
}

func (bw *blockWriter) flush() error {
	if len(bw.buf) == 0 {
		return nil
	}
	_, err := bw.w.WriteAt(bw.buf, bw.off)
	bw.buf = bw.buf[:0]
	return err
}
