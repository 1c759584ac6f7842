package squashfs

import (
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"strings"
	"time"
)

// Defaults of Options' zero values.
const (
	DefaultCompression = "gzip"
	DefaultBlockSize   = 1 << 20 // block_log 20: fewest blocks, best ratio for a rootfs
	MinBlockSize       = 4 << 10 // the kernel refuses blocks smaller than a page
	MaxBlockSize       = 1 << 20 // SQUASHFS_FILE_MAX_SIZE
)

// Options controls Write. The zero value is valid: gzip at level 7,
// 1 MiB blocks, one worker per CPU, mkfs_time 0, fragments and
// duplicate detection on.
type Options struct {
	// Compression is "gzip" (default), "xz" or "zstd". The same
	// compressor is used for data and metadata, as the format requires.
	Compression string
	// Level is the compression level; 0 picks the compressor's default:
	// gzip 7 (1-9), zstd 15 (1-22), xz 6 (0-9). gzip levels are zlib's
	// (same search parameters); the default is 7 rather than mksquashfs'
	// 9 because it compresses a root file system within 0.2% of level 9
	// in a third of the time. zstd levels map to klauspost's four speeds
	// (<3 fastest, <6 default, <10 better, else best; 15 is "best", as
	// mksquashfs' default 15 is among libzstd's); ulikunitz/xz has a
	// single usable mode, so the xz level is checked but changes nothing.
	Level int
	// BlockSize is the data block size, a power of two between 4 KiB and
	// 1 MiB; 0 means 1 MiB.
	BlockSize int
	// Workers is the number of goroutines compressing blocks; 0 means
	// GOMAXPROCS. The output does not depend on it.
	Workers int
	// ModTime becomes the superblock's mkfs_time (seconds, unsigned
	// 32-bit). It is never taken from the clock, so that images are
	// reproducible: pass fstree.SourceDateEpoch() or a fixed time. The zero
	// Time stores 0.
	ModTime time.Time
	// NoDuplicates disables duplicate-file detection (every file's data
	// is stored even when identical to an earlier file).
	NoDuplicates bool
	// NoFragments disables tail-end packing: the last partial block of
	// each file is stored as a short block of its own.
	NoFragments bool
	// NoExport leaves out the NFS export table (inode number -> inode
	// lookup), which costs 8 bytes per inode.
	NoExport bool
	// BlockCache, if set, gives the compressed form of blocks written
	// before (checked against their content) and keeps the new ones. The
	// image does not depend on it.
	BlockCache BlockCache
	// Progress, if set, is called from a single goroutine as file data
	// is written, with the bytes of file content done so far and the
	// total (hardlinked content counted once).
	Progress func(done, total int64)
}

// settings are validated Options with defaults filled in.
type settings struct {
	codec      *codec
	level      int
	blockSize  int
	blockLog   uint16
	workers    int
	mkfsTime   uint32
	dedupe     bool
	fragments  bool
	exportable bool
	progress   func(done, total int64)
	cache      BlockCache
}

// validate checks opt and fills in defaults. Errors name the offending
// option and its valid range so a caller can pass them on to the user.
func (opt Options) validate() (settings, error) {
	var s settings
	name := strings.ToLower(strings.TrimSpace(opt.Compression))
	if name == "" {
		name = DefaultCompression
	}
	c, ok := codecs[name]
	if !ok {
		return s, fmt.Errorf("squashfs: unknown compression %q (valid: %s)", opt.Compression, codecNames())
	}
	s.codec = c
	s.level = opt.Level
	if s.level == 0 {
		s.level = c.defaultLevel
	}
	if s.level < c.minLevel || s.level > c.maxLevel {
		return s, fmt.Errorf("squashfs: %s level %d out of range (valid: %d-%d, 0 for the default %d)",
			c.name, opt.Level, c.minLevel, c.maxLevel, c.defaultLevel)
	}
	s.blockSize = opt.BlockSize
	if s.blockSize == 0 {
		s.blockSize = DefaultBlockSize
	}
	if s.blockSize < MinBlockSize || s.blockSize > MaxBlockSize || bits.OnesCount(uint(s.blockSize)) != 1 {
		return s, fmt.Errorf("squashfs: block size %d invalid: must be a power of two between %d (4 KiB) and %d (1 MiB)",
			opt.BlockSize, MinBlockSize, MaxBlockSize)
	}
	s.blockLog = uint16(bits.TrailingZeros(uint(s.blockSize)))
	switch {
	case opt.Workers < 0:
		return s, fmt.Errorf("squashfs: workers %d invalid: must be >= 0 (0 means one per CPU)", opt.Workers)
	case opt.Workers == 0:
		s.workers = runtime.GOMAXPROCS(0)
	default:
		s.workers = opt.Workers
	}
	if !opt.ModTime.IsZero() {
		sec := opt.ModTime.Unix()
		if sec < 0 || sec > math.MaxUint32 {
			return s, fmt.Errorf("squashfs: modification time %s out of range: squashfs stores unsigned 32-bit seconds (1970-2106)",
				opt.ModTime.UTC().Format(time.RFC3339))
		}
		s.mkfsTime = uint32(sec)
	}
	s.dedupe = !opt.NoDuplicates
	s.fragments = !opt.NoFragments
	s.exportable = !opt.NoExport
	s.progress = opt.Progress
	s.cache = opt.BlockCache
	return s, nil
}

// Stats describes what Write stored.
type Stats struct {
	Inodes    int // inodes in the image; hardlinked entries count once
	Dirs      int
	Files     int // regular-file inodes
	Symlinks  int
	Devices   int // character and block devices
	IPC       int // fifos and sockets
	Hardlinks int // directory entries beyond the first for an inode

	DataBytes      int64 // file content, each inode once
	DataBlocks     int   // data blocks written (not counting sparse or duplicate ones)
	SparseBlocks   int   // all-zero blocks stored as holes
	CachedBlocks   int   // blocks (data and fragments) taken from the BlockCache
	FragmentBlocks int   // fragment blocks holding tail ends
	DuplicateFiles int   // files stored as references to an identical earlier file
	DuplicateBytes int64 // content bytes saved that way

	IDs           int // distinct uids/gids
	XattrIDs      int // distinct xattr sets
	SkippedXattrs int // xattrs outside user./trusted./security., which squashfs cannot store
	ClampedTimes  int // mtimes outside 0..2^32-1 that were clamped

	BytesUsed int64 // the superblock's bytes_used
	ImageSize int64 // bytes written, padded to a multiple of 4 KiB
}
