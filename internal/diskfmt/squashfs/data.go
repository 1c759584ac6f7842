package squashfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// The data area (squashfs.rst 3.4): right after the superblock, every
// regular file's full blocks, compressed one by one and stored back to back
// (a file's blocks must be contiguous: the inode stores only the first
// block's position and each block's stored size), with fragment blocks
// in between.
//
// The pipeline has three stages:
//
//   - one dispatcher goroutine reads files in layout order, cuts them into
//     blocks, packs tails into fragment blocks and decides duplicates. It
//     is the only place where layout decisions are made, so the image does
//     not depend on scheduling;
//   - Workers goroutines compress blocks, each with its own reusable
//     compressor;
//   - one writer goroutine takes blocks in dispatch order (each chunk is
//     queued in order before it is handed to the workers, and the writer
//     waits for the chunk at the head), writes them and records positions.
//
// The order queue is bounded, which bounds memory to a few blocks per
// worker whatever the tree size.

type chunkKind uint8

const (
	chunkBlock    chunkKind = iota // a block of a file
	chunkFragment                  // a packed fragment block
	chunkDup                       // a file identical to an earlier one
	chunkProgress                  // nothing to write; carries progress only
)

type chunk struct {
	kind     chunkKind
	file     *fileData
	orig     *fileData // chunkDup: the file whose data is reused
	first    bool      // chunkBlock: the file's first block
	in       []byte    // uncompressed block
	out      []byte    // compressed block, if smaller than in
	raw      bool      // store in uncompressed
	sparse   bool      // in is all zeros: store nothing
	progress int64     // content bytes accounted for by this chunk
	err      error
	done     chan struct{} // closed once compressed
}

// closedDone is the done channel of chunks that need no compression.
var closedDone = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// zeroBlock is compared against to detect sparse blocks.
var zeroBlock [MaxBlockSize]byte

// inMemoryDedupeLimit: files that may be duplicates (their size is shared
// with another file) are read whole into memory, hashed and compared before
// any of their blocks is compressed. Larger ones are hashed in a first pass
// and read again if they turn out to be unique.
var inMemoryDedupeLimit int64 = 16 << 20

// bufPool recycles block buffers between the dispatcher, the workers and
// the writer, so steady state allocates nothing per block.
type bufPool struct {
	size int
	p    sync.Pool
}

func (b *bufPool) get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return (*v)[:b.size]
	}
	// Room for incompressible input growing a little in the compressor.
	return make([]byte, b.size, b.size+b.size/16+1024)
}

func (b *bufPool) put(buf []byte) {
	if cap(buf) < b.size {
		return
	}
	buf = buf[:0]
	b.p.Put(&buf)
}

type pipeline struct {
	s     settings
	t     *tree
	out   *output
	pool  bufPool
	comps []compressor // one per worker

	// results, owned by the writer goroutine until run returns
	frags          []fragmentEntry
	dataBlocks     int
	sparseBlocks   int
	fragmentBlocks int

	// owned by the dispatcher goroutine until run returns
	dupFiles int
	dupBytes int64

	cacheHits atomic.Int64 // blocks taken from s.cache
}

func newPipeline(s settings, t *tree, out *output) (*pipeline, error) {
	p := &pipeline{s: s, t: t, out: out, pool: bufPool{size: s.blockSize}}
	for i := 0; i < s.workers; i++ {
		c, err := s.codec.newCompressor(s.level, s.blockSize)
		if err != nil {
			return nil, fmt.Errorf("squashfs: %w", err)
		}
		p.comps = append(p.comps, c)
	}
	return p, nil
}

// run writes all file data and fills every file's fileData.
func (p *pipeline) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	work := make(chan *chunk, p.s.workers)
	order := make(chan *chunk, 4*p.s.workers+4)
	for _, c := range p.comps {
		g.Go(func() error {
			p.compressLoop(ctx, c, work)
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		defer close(order)
		d := &dispatcher{p: p, ctx: ctx, work: work, order: order,
			packer: packer{blockSize: p.s.blockSize}, seen: map[dupKey][]*inode{}}
		d.seed = maphash.MakeSeed()
		return d.run()
	})
	g.Go(func() error { return p.writeLoop(ctx, order) })
	return g.Wait()
}

func (p *pipeline) compressLoop(ctx context.Context, comp compressor, work <-chan *chunk) {
	for c := range work {
		if err := ctx.Err(); err != nil {
			c.err = err
		} else {
			p.compress(comp, c)
		}
		close(c.done)
	}
}

func (p *pipeline) compress(comp compressor, c *chunk) {
	// A full block of zeros becomes a hole (block size 0 in the inode),
	// as mksquashfs does: the kernel and unsquashfs expand it to zeros.
	if c.kind == chunkBlock && len(c.in) == p.s.blockSize &&
		c.in[0] == 0 && c.in[len(c.in)-1] == 0 && bytes.Equal(c.in, zeroBlock[:len(c.in)]) {
		c.sparse = true
		return
	}
	var key BlockKey
	if p.s.cache != nil {
		key = blockKey(p.s, c.in)
		if out, raw, ok := p.cached(key, c.in); ok {
			c.out, c.raw = out, raw
			p.cacheHits.Add(1)
			return
		}
	}
	out, err := comp.compress(p.pool.get(), c.in)
	if err != nil {
		c.err = fmt.Errorf("squashfs: compressing: %w", err)
		return
	}
	if len(out) >= len(c.in) {
		// Store raw: compression did not help (squashfs.rst 3.2).
		c.raw = true
		p.pool.put(out)
		if p.s.cache != nil {
			p.s.cache.Put(key, []byte{entryRaw})
		}
		return
	}
	c.out = out
	if p.s.cache != nil {
		p.s.cache.Put(key, append([]byte{entryCompressed}, out...))
	}
}

func (p *pipeline) writeLoop(ctx context.Context, order <-chan *chunk) error {
	var done int64
	total := p.t.stats.DataBytes
	for c := range order {
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if c.err != nil {
			return c.err
		}
		switch c.kind {
		case chunkBlock:
			f := c.file
			if c.first {
				f.start = uint64(p.out.pos)
				f.sizes = make([]uint32, 0, (f.size+int64(p.s.blockSize)-1)/int64(p.s.blockSize))
			}
			switch {
			case c.sparse:
				f.sizes = append(f.sizes, 0)
				f.sparse += uint64(len(c.in))
				p.sparseBlocks++
			case c.raw:
				f.sizes = append(f.sizes, uint32(len(c.in))|blockUncompressed)
				p.dataBlocks++
			default:
				f.sizes = append(f.sizes, uint32(len(c.out)))
				p.dataBlocks++
			}
		case chunkFragment:
			e := fragmentEntry{start: uint64(p.out.pos), size: uint32(len(c.out))}
			if c.raw {
				e.size = uint32(len(c.in)) | blockUncompressed
			}
			p.frags = append(p.frags, e)
			p.fragmentBlocks++
		case chunkDup:
			c.file.start, c.file.sizes, c.file.sparse = c.orig.start, c.orig.sizes, c.orig.sparse
		}
		var err error
		switch {
		case c.sparse || c.in == nil:
		case c.raw:
			err = p.out.write(c.in)
		default:
			err = p.out.write(c.out)
		}
		if err != nil {
			return err
		}
		if c.in != nil {
			p.pool.put(c.in)
		}
		if c.out != nil {
			p.pool.put(c.out)
		}
		if c.progress > 0 && p.s.progress != nil {
			done += c.progress
			p.s.progress(done, total)
		}
	}
	return nil
}

type dupKey struct {
	size int64
	hash uint64
}

// dispatcher is the pipeline's first stage (see the top of this file).
type dispatcher struct {
	p       *pipeline
	ctx     context.Context
	work    chan<- *chunk
	order   chan<- *chunk
	packer  packer
	pending int64 // progress not yet attached to a chunk

	seed    maphash.Seed
	seen    map[dupKey][]*inode // files stored so far, by size and hash
	scratch [2][]byte
}

func (d *dispatcher) run() error {
	p := d.p
	shared := map[int64]int{}
	if p.s.dedupe {
		for _, ino := range p.t.files {
			if ino.file.size > 0 {
				shared[ino.file.size]++
			}
		}
	}
	for _, ino := range p.t.files {
		size := ino.file.size
		var err error
		switch {
		case size == 0:
			continue // no blocks, no fragment
		case shared[size] < 2:
			// No other file has this size: it cannot be a duplicate,
			// so skip hashing.
			err = d.stream(ino)
		case size <= inMemoryDedupeLimit:
			err = d.buffered(ino)
		default:
			err = d.hashedTwice(ino)
		}
		if err != nil {
			return err
		}
	}
	if last := d.packer.flush(); last != nil {
		if err := d.emit(&chunk{kind: chunkFragment, in: last}, true); err != nil {
			return err
		}
	}
	if d.pending > 0 {
		return d.emit(&chunk{kind: chunkProgress}, false)
	}
	return nil
}

// emit queues c for the writer and, if it needs compressing, for the
// workers, in that order: the writer only ever waits for chunks that are
// already in the work queue or being compressed, so it cannot deadlock.
func (d *dispatcher) emit(c *chunk, compress bool) error {
	c.progress += d.pending
	d.pending = 0
	c.done = closedDone
	if compress {
		c.done = make(chan struct{})
	}
	select {
	case d.order <- c:
	case <-d.ctx.Done():
		return d.ctx.Err()
	}
	if compress {
		select {
		case d.work <- c:
		case <-d.ctx.Done():
			return d.ctx.Err()
		}
	}
	return nil
}

// piece hands one piece of a file (a full block, or the tail) on.
func (d *dispatcher) piece(f *fileData, buf []byte, first bool) error {
	if len(buf) == d.p.s.blockSize || !d.p.s.fragments {
		return d.emit(&chunk{kind: chunkBlock, file: f, first: first, in: buf, progress: int64(len(buf))}, true)
	}
	index, offset, full := d.packer.add(buf, d.p.pool.get)
	f.fragIndex, f.fragOffset = index, offset
	d.pending += int64(len(buf))
	d.p.pool.put(buf)
	if full != nil {
		return d.emit(&chunk{kind: chunkFragment, in: full}, true)
	}
	return nil
}

func (d *dispatcher) stream(ino *inode) error {
	first := true
	return d.readContent(ino, func(buf []byte) error {
		err := d.piece(ino.file, buf, first)
		first = false
		return err
	})
}

// buffered reads a possible duplicate whole, then either references the
// identical earlier file or dispatches the buffers.
func (d *dispatcher) buffered(ino *inode) error {
	var h maphash.Hash
	h.SetSeed(d.seed)
	var bufs [][]byte
	release := func() {
		for _, b := range bufs {
			d.p.pool.put(b)
		}
	}
	if err := d.readContent(ino, func(buf []byte) error {
		h.Write(buf)
		bufs = append(bufs, buf)
		return nil
	}); err != nil {
		release()
		return err
	}
	key := dupKey{ino.file.size, h.Sum64()}
	orig, err := d.find(key, func(o *inode) (bool, error) { return d.equalBuffers(o, bufs) })
	if err != nil {
		release()
		return err
	}
	if orig != nil {
		release()
		return d.duplicate(ino, orig)
	}
	d.seen[key] = append(d.seen[key], ino)
	for i, b := range bufs {
		bufs[i] = nil
		if err := d.piece(ino.file, b, i == 0); err != nil {
			return err
		}
	}
	return nil
}

// hashedTwice handles a large possible duplicate: hash it in a first pass,
// then compare or stream it.
func (d *dispatcher) hashedTwice(ino *inode) error {
	var h maphash.Hash
	h.SetSeed(d.seed)
	if err := d.readContent(ino, func(buf []byte) error {
		h.Write(buf)
		d.p.pool.put(buf)
		return nil
	}); err != nil {
		return err
	}
	key := dupKey{ino.file.size, h.Sum64()}
	orig, err := d.find(key, func(o *inode) (bool, error) { return d.equalFiles(o, ino) })
	if err != nil {
		return err
	}
	if orig != nil {
		return d.duplicate(ino, orig)
	}
	d.seen[key] = append(d.seen[key], ino)
	return d.stream(ino)
}

// find returns the earlier file with the same key whose content is equal
// (verified byte for byte: the hash only selects candidates).
func (d *dispatcher) find(key dupKey, equal func(*inode) (bool, error)) (*inode, error) {
	for _, o := range d.seen[key] {
		ok, err := equal(o)
		if err != nil || ok {
			return o, err
		}
	}
	return nil, nil
}

func (d *dispatcher) duplicate(ino, orig *inode) error {
	f, o := ino.file, orig.file
	f.fragIndex, f.fragOffset = o.fragIndex, o.fragOffset
	d.p.dupFiles++
	d.p.dupBytes += f.size
	return d.emit(&chunk{kind: chunkDup, file: f, orig: o, progress: f.size}, false)
}

var errDiffer = errors.New("contents differ")

// equalBuffers compares orig's content with bufs.
func (d *dispatcher) equalBuffers(orig *inode, bufs [][]byte) (bool, error) {
	i := 0
	err := d.readContent(orig, func(buf []byte) error {
		defer d.p.pool.put(buf)
		if !bytes.Equal(buf, bufs[i]) {
			return errDiffer
		}
		i++
		return nil
	})
	if errors.Is(err, errDiffer) {
		return false, nil
	}
	return err == nil, err
}

// equalFiles compares the content of two files of the same size.
func (d *dispatcher) equalFiles(a, b *inode) (bool, error) {
	ra, err := openContent(a)
	if err != nil {
		return false, err
	}
	defer ra.Close()
	rb, err := openContent(b)
	if err != nil {
		return false, err
	}
	defer rb.Close()
	bs := int64(d.p.s.blockSize)
	for i := range d.scratch {
		if d.scratch[i] == nil {
			d.scratch[i] = make([]byte, bs)
		}
	}
	for remaining := a.file.size; remaining > 0; {
		n := min(remaining, bs)
		for i, r := range []struct {
			ino *inode
			rc  io.Reader
		}{{a, ra}, {b, rb}} {
			if _, err := io.ReadFull(r.rc, d.scratch[i][:n]); err != nil {
				return false, fmt.Errorf("squashfs: reading %s: %w (changed while reading?)", r.ino.path, err)
			}
		}
		if !bytes.Equal(d.scratch[0][:n], d.scratch[1][:n]) {
			return false, nil
		}
		remaining -= n
	}
	return true, nil
}

// readContent opens ino and passes its content to fn in pieces of up to
// one block, in pool buffers that fn takes over. The content must be
// exactly the declared size: a file that changed while being read would
// otherwise give an inconsistent image.
func (d *dispatcher) readContent(ino *inode, fn func([]byte) error) error {
	rc, err := openContent(ino)
	if err != nil {
		return err
	}
	defer rc.Close()
	bs := int64(d.p.s.blockSize)
	for remaining := ino.file.size; remaining > 0; {
		n := min(remaining, bs)
		buf := d.p.pool.get()[:n]
		if _, err := io.ReadFull(rc, buf); err != nil {
			d.p.pool.put(buf)
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("squashfs: %s: content shorter than its size %d (changed while reading?)", ino.path, ino.file.size)
			}
			return fmt.Errorf("squashfs: reading %s: %w", ino.path, err)
		}
		remaining -= n
		if err := fn(buf); err != nil {
			return err
		}
	}
	var one [1]byte
	switch n, err := rc.Read(one[:]); {
	case n > 0:
		return fmt.Errorf("squashfs: %s: content longer than its size %d (changed while reading?)", ino.path, ino.file.size)
	case err != nil && !errors.Is(err, io.EOF):
		return fmt.Errorf("squashfs: reading %s: %w", ino.path, err)
	}
	return nil
}

func openContent(ino *inode) (io.ReadCloser, error) {
	rc, err := ino.node.Open()
	if err != nil {
		return nil, fmt.Errorf("squashfs: opening %s: %w", ino.path, err)
	}
	return rc, nil
}
