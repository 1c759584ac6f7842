package qcow2

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// lseek(2) whence values for sparse files on Linux (<linux/fs.h>); the
// syscall package does not name them.
const (
	seekData = 3
	seekHole = 4
)

// dataExtents asks the file system where src has data, so that holes (most
// of a freshly built disk image) are skipped without being read. Sources that
// are not files, and file systems that cannot answer, yield one extent
// covering everything: still correct, just slower.
func dataExtents(src io.ReaderAt, size int64) []extent {
	all := []extent{{0, size}}
	f, ok := src.(*os.File)
	if !ok {
		return all
	}
	// lseek moves the file offset, which ReadAt does not use; restore it
	// anyway so that a caller reading f sequentially is not disturbed.
	saved, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return all
	}
	defer func() { _, _ = f.Seek(saved, io.SeekStart) }()

	var exts []extent
	for pos := int64(0); pos < size; {
		start, err := f.Seek(pos, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // only a hole from pos to the end of the file
		}
		if err != nil {
			return all
		}
		if start >= size {
			break
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			return all
		}
		end = min(end, size)
		exts = append(exts, extent{start, end})
		pos = end
	}
	return exts
}
