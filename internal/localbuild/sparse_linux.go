package localbuild

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// holeChunk is the granularity of hole punching: large enough to keep the
// number of syscalls low, small enough to find the free space of file
// systems (4 KiB blocks) inside a disk image.
const holeChunk = 64 << 10

// Sparsify gives back the space of all-zero regions of a file. BuildKit's
// local exporter writes files densely, so an 8 GiB disk image that the
// artifact writer made sparse arrives as 8 GiB of mostly zeros; punching
// holes keeps the content and frees the space.
func Sparsify(path string) (freed int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, holeChunk)
	zero := make([]byte, holeChunk)
	for off := int64(0); ; off += holeChunk {
		n, err := io.ReadFull(f, buf)
		if n == holeChunk && bytes.Equal(buf, zero) {
			if perr := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, holeChunk); perr != nil {
				return freed, fmt.Errorf("punching a hole in %s: %w", path, perr)
			}
			freed += holeChunk
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return freed, nil
		}
		if err != nil {
			return freed, err
		}
	}
}
