package localbuild

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// holeChunk is the granularity of holes: large enough to keep the number
// of writes low, small enough to find the free space of file systems
// (4 KiB blocks) inside a disk image.
const holeChunk = 64 << 10

// extract writes the files of a tar stream (BuildKit's tar exporter of
// the artifacts) under dir and gives their paths. Runs of zeros become
// holes as they arrive: an 8 GiB disk image that the writer made sparse
// is never written densely and then punched again. The stream is treated
// as untrusted: only directories and regular files, only paths inside
// dir; each file appears under its name once complete.
func extract(r io.Reader, dir string) ([]string, error) {
	tr := tar.NewReader(r)
	var files []string
	buf := make([]byte, holeChunk)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return files, fmt.Errorf("reading the exported artifacts: %w", err)
		}
		name := strings.TrimPrefix(filepath.Clean(strings.TrimPrefix(h.Name, "/")), "./")
		if name == "." {
			continue
		}
		if !filepath.IsLocal(name) {
			return files, fmt.Errorf("the exported artifacts hold %q, outside the output directory", h.Name)
		}
		dst := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return files, err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return files, err
			}
			if err := writeSparse(dst, tr, h, buf); err != nil {
				return files, err
			}
			files = append(files, dst)
		default:
			return files, fmt.Errorf("the exported artifacts hold %q of type %q: only files and directories are expected", h.Name, h.Typeflag)
		}
	}
}

// receive extracts the exporter's stream from its pipe, reads what follows
// the archive (tar's padding), and closes the pipe with the outcome so
// that a failed extraction fails the exporter's writes instead of
// blocking them.
func receive(pr *io.PipeReader, dir string) ([]string, error) {
	files, err := extract(pr, dir)
	if err == nil {
		_, err = io.Copy(io.Discard, pr)
	}
	pr.CloseWithError(err)
	return files, err
}

// writeSparse writes one file through a temporary name, skipping all-zero
// chunks so that they stay holes.
func writeSparse(dst string, r io.Reader, h *tar.Header, buf []byte) error {
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".partial")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	var off int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if n < len(buf) || !allZero(buf[:n]) {
				if _, err := f.WriteAt(buf[:n], off); err != nil {
					return fmt.Errorf("writing %s: %w", dst, err)
				}
			}
			off += int64(n)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading %s from the export: %w", h.Name, rerr)
		}
	}
	if off != h.Size {
		return fmt.Errorf("%s: %d of %d bytes in the export", h.Name, off, h.Size)
	}
	// A file ending in zeros: the size covers the last hole.
	if err := f.Truncate(off); err != nil {
		return err
	}
	if err := f.Chmod(os.FileMode(h.Mode) & 0o755); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	ok = true
	if !h.ModTime.IsZero() {
		os.Chtimes(tmp, time.Now(), h.ModTime)
	}
	return os.Rename(tmp, dst)
}

var zeros = make([]byte, holeChunk)

func allZero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }
