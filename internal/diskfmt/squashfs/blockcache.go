package squashfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// BlockCache remembers compressed blocks by their content, so that writing
// a file system much like an earlier one (the same image with one file
// changed) copies the blocks of unchanged files instead of compressing them
// again. Compression is deterministic, so the image is the same with or
// without a cache; a block read from the cache is decompressed and compared
// with the content before it is used, so a damaged or planted entry can only
// cost time (and, if it holds another valid compression of the same bytes,
// the image's byte-for-byte reproducibility), never the image's content.
type BlockCache interface {
	// Get returns the entry stored under key; ok is false when there is
	// none.
	Get(key BlockKey) (entry []byte, ok bool)
	// Put stores an entry; failures are the cache's to ignore.
	Put(key BlockKey, entry []byte)
}

// BlockKey names a block: the SHA-256 of the compressor's settings and
// the block's content.
type BlockKey [sha256.Size]byte

func (k BlockKey) String() string { return hex.EncodeToString(k[:]) }

// blockKey covers everything the compressed form depends on: codec,
// level, the window (from the block size) and the bytes.
func blockKey(s settings, in []byte) BlockKey {
	h := sha256.New()
	var hdr [16]byte
	binary.LittleEndian.PutUint16(hdr[0:], s.codec.id)
	binary.LittleEndian.PutUint32(hdr[2:], uint32(s.level))
	binary.LittleEndian.PutUint32(hdr[6:], uint32(s.blockSize))
	binary.LittleEndian.PutUint32(hdr[10:], uint32(len(in)))
	h.Write([]byte("kairos squashfs block v1\x00"))
	h.Write(hdr[:])
	h.Write(in)
	var k BlockKey
	h.Sum(k[:0])
	return k
}

// Entries: one byte saying how the block is stored, then its bytes.
const (
	entryRaw        = 0 // compression did not help: stored as is
	entryCompressed = 1
)

// cached returns the block's stored form from the cache when the entry
// holds exactly in: raw, or compressed bytes that decompress to in.
func (p *pipeline) cached(key BlockKey, in []byte) (out []byte, raw, ok bool) {
	e, ok := p.s.cache.Get(key)
	if !ok || len(e) < 1 {
		return nil, false, false
	}
	switch e[0] {
	case entryRaw:
		return nil, true, len(e) == 1
	case entryCompressed:
		body := e[1:]
		if len(body) == 0 || len(body) >= len(in) || !p.s.codec.holds(body, in) {
			return nil, false, false
		}
		return append(p.pool.get()[:0], body...), false, true
	}
	return nil, false, false
}

var zstdVerify, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))

// holds says whether compressed decompresses to exactly want.
func (c *codec) holds(compressed, want []byte) bool {
	var r io.Reader
	switch c.id {
	case compZlib:
		zr, err := zlib.NewReader(bytes.NewReader(compressed))
		if err != nil {
			return false
		}
		r = zr
	case compXZ:
		xr, err := xz.NewReader(bytes.NewReader(compressed))
		if err != nil {
			return false
		}
		r = xr
	case compZstd:
		got, err := zstdVerify.DecodeAll(compressed, make([]byte, 0, len(want)))
		return err == nil && bytes.Equal(got, want)
	default:
		return false
	}
	got := make([]byte, len(want)+1)
	n, err := io.ReadFull(r, got)
	return errors.Is(err, io.ErrUnexpectedEOF) && n == len(want) && bytes.Equal(got[:n], want)
}

// DirCache is a BlockCache in a directory (a BuildKit cache mount, or
// ~/.cache): one file per block, written atomically, so several writers
// may share it.
type DirCache struct {
	Dir string
	// MaxEntry bounds what Get reads (default: 1 MiB and a bit).
	MaxEntry int64
}

func (d DirCache) path(k BlockKey) string {
	s := k.String()
	return filepath.Join(d.Dir, s[:2], s)
}

// Get reads an entry and marks it used (its time), for Prune.
func (d DirCache) Get(k BlockKey) ([]byte, bool) {
	p := d.path(k)
	f, err := os.Open(p)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	max := d.MaxEntry
	if max == 0 {
		max = MaxBlockSize + 4096
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil || int64(len(data)) > max {
		return nil, false
	}
	now := time.Now()
	os.Chtimes(p, now, now)
	return data, true
}

// Put writes an entry through a temporary file and a rename.
func (d DirCache) Put(k BlockKey, entry []byte) {
	p := d.path(k)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return
	}
	_, err = f.Write(entry)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || os.Rename(f.Name(), p) != nil {
		os.Remove(f.Name())
	}
}

// Prune removes the least recently used entries until the cache holds at
// most max bytes.
func (d DirCache) Prune(max int64) error {
	type entry struct {
		path string
		size int64
		used time.Time
	}
	var all []entry
	var total int64
	err := filepath.WalkDir(d.Dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				all = append(all, entry{p, info.Size(), info.ModTime()})
				total += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	for _, e := range all {
		if total <= max {
			break
		}
		if os.Remove(e.path) == nil {
			total -= e.size
		}
	}
	return nil
}
