package squashfs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// Compressor ids from squashfs_fs.h (ZLIB_COMPRESSION ... ZSTD_COMPRESSION).
const (
	compZlib = 1
	compXZ   = 4
	compZstd = 6
)

// compressor compresses one block (data, fragment or metadata) at a time.
// Instances are not safe for concurrent use: every worker owns one, so the
// expensive encoder state (match tables, windows) is allocated once per
// worker rather than once per block.
type compressor interface {
	// compress appends the compressed form of src to dst[:0] and returns
	// the result. The caller decides whether to keep it or to store src
	// uncompressed (when the result is not smaller).
	compress(dst, src []byte) ([]byte, error)
}

// codec describes one supported compression algorithm.
type codec struct {
	name         string
	id           uint16
	defaultLevel int
	minLevel     int
	maxLevel     int
	// newCompressor returns a compressor for blocks of at most blockSize
	// bytes. window is the largest history the decompressor is prepared
	// for: the kernel sizes its xz dictionary and zstd window from the
	// block size (max(block_size, 8 KiB)), so streams must not ask for more.
	newCompressor func(level, window int) (compressor, error)
}

// codecs lists the compressors this writer implements. gzip is the default
// because GRUB's squash4 driver reads it (GRUB has no zstd for squashfs).
var codecs = map[string]*codec{
	"gzip": {
		name: "gzip", id: compZlib,
		// Levels use zlib's own search parameters (deflate.go). The
		// default is 7, not mksquashfs' 9: on a Debian root file system
		// level 7 came within 0.2% of zlib -9's size (8 and 9 gain the
		// last 0.2%) in a third of the time; 9 is there when every byte
		// counts.
		defaultLevel: 7, minLevel: 1, maxLevel: 9,
		newCompressor: newZlibCompressor,
	},
	"xz": {
		name: "xz", id: compXZ,
		// liblzma's default preset, which mksquashfs uses.
		defaultLevel: 6, minLevel: 0, maxLevel: 9,
		newCompressor: newXZCompressor,
	},
	"zstd": {
		name: "zstd", id: compZstd,
		// mksquashfs' default zstd level.
		defaultLevel: 15, minLevel: 1, maxLevel: 22,
		newCompressor: newZstdCompressor,
	},
}

// codecNames returns the valid compressor names, sorted, for error messages.
func codecNames() string {
	names := make([]string, 0, len(codecs))
	for n := range codecs {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// sliceWriter is an io.Writer appending to a reusable byte slice, so that
// streaming encoders (zlib, xz) write straight into pooled buffers.
type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// newZlibCompressor returns the "gzip" compressor. Squashfs "gzip" is
// zlib's compress2() format (RFC 1950 header + deflate + adler32), not the
// gzip file format; deflate.go explains why it has its own encoder.
func newZlibCompressor(level, _ int) (compressor, error) {
	return newDeflater(level), nil
}

// zstdCompressor uses klauspost's pure-Go encoder. EncodeAll writes one
// complete frame per block with the content size in the header; the frame
// checksum is left out (squashfs-tools' ZSTD_compressCCtx does not add one
// either, and every block is self-delimiting).
type zstdCompressor struct {
	enc *zstd.Encoder
}

func newZstdCompressor(level, window int) (compressor, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(window),
		zstd.WithEncoderCRC(false),
	)
	if err != nil {
		return nil, fmt.Errorf("zstd level %d: %w", level, err)
	}
	return &zstdCompressor{enc: enc}, nil
}

func (c *zstdCompressor) compress(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}

// xzCompressor writes one .xz stream per block with a CRC32 check: the
// kernel's xz decoder supports CRC32 (not CRC64/SHA-256) and squashfs-tools
// uses LZMA_CHECK_CRC32 as well. The LZMA2 dictionary never exceeds the
// window the kernel preallocates.
type xzCompressor struct {
	cfg xz.WriterConfig
	sw  sliceWriter
}

func newXZCompressor(level, window int) (compressor, error) {
	cfg := xz.WriterConfig{
		DictCap:  window,
		CheckSum: xz.CRC32,
		// ulikunitz/xz has no presets, so the level does not change the
		// output. Its binary-tree match finder is not usable: it took
		// minutes on one 1 MiB block of repetitive text. The hash-table
		// finder is what remains.
		Matcher: lzma.HashTable4,
	}
	if err := cfg.Verify(); err != nil {
		return nil, fmt.Errorf("xz level %d: %w", level, err)
	}
	return &xzCompressor{cfg: cfg}, nil
}

func (c *xzCompressor) compress(dst, src []byte) ([]byte, error) {
	c.sw.b = dst[:0]
	w, err := c.cfg.NewWriter(&c.sw)
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if _, err := w.Write(src); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	return c.sw.b, nil
}
