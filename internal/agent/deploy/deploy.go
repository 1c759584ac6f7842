// Package deploy is what the agent's install, upgrade and reset share to
// put system images on partitions: writing an image from a tree, sparse
// copies, relabelling, and mounts undone in reverse.
package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/diskfmt/ext4"
	"github.com/kairos-io/kairos/internal/fstree"
)

// Stages runs cloud-config stages: on the running system (root "/") or
// chrooted into the new image (another root).
type Stages interface {
	Has(stage string) bool
	Run(ctx context.Context, stage, root string) error
}

// Progress returns a progress callback printing a line per 10% of a long
// write through say.
func Progress(say func(format string, args ...any), what string) func(done, total int64) {
	last := int64(-1)
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		if pct := done * 100 / total / 10 * 10; pct != last {
			last = pct
			say("%s: %d%% (%d/%d MiB)", what, pct, done>>20, total>>20)
		}
	}
}

// Run runs a tool, its output in the error when it fails.
func Run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Mounts remembers what it mounted, to undo it in reverse.
type Mounts struct{ points []point }

type point struct {
	dir string
	// remounted: the dir was mounted read-only before and goes back to
	// that instead of being unmounted.
	remounted bool
}

// Mount mounts src at dir (created): opts "loop" attaches a file, "bind"
// binds a directory, "" mounts a device.
func (m *Mounts) Mount(src, dir, fstype, opts string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var err error
	switch opts {
	case "loop":
		err = Run("mount", "-o", "loop", src, dir)
	case "bind":
		err = unix.Mount(src, dir, "", unix.MS_BIND|unix.MS_REC, "")
	default:
		err = unix.Mount(src, dir, fstype, 0, "")
	}
	if err != nil {
		return fmt.Errorf("mounting %s at %s: %w", src, dir, err)
	}
	m.points = append(m.points, point{dir: dir})
	return nil
}

// RemountRW makes the read-only mount at dir writable until UnmountAll
// makes it read-only again.
func (m *Mounts) RemountRW(dir string) error {
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT, ""); err != nil {
		return fmt.Errorf("remounting %s read-write: %w", dir, err)
	}
	m.points = append(m.points, point{dir: dir, remounted: true})
	return nil
}

// UnmountBelow unmounts what was mounted at root and below it.
func (m *Mounts) UnmountBelow(root string) error {
	var errs []error
	for i := len(m.points) - 1; i >= 0; i-- {
		p := m.points[i]
		if p.dir != root && !strings.HasPrefix(p.dir, root+"/") {
			continue
		}
		if err := m.undo(p, unix.MNT_DETACH); err != nil {
			errs = append(errs, err)
		}
		m.points = append(m.points[:i], m.points[i+1:]...)
	}
	return errors.Join(errs...)
}

// UnmountAll undoes everything, last first.
func (m *Mounts) UnmountAll() error {
	var errs []error
	for i := len(m.points) - 1; i >= 0; i-- {
		// A plain unmount flushes the file system; detach would return
		// before that.
		if err := m.undo(m.points[i], 0); err != nil {
			errs = append(errs, err)
		}
	}
	m.points = nil
	return errors.Join(errs...)
}

func (m *Mounts) undo(p point, flags int) error {
	if p.remounted {
		unix.Sync()
		if err := unix.Mount("", p.dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("remounting %s read-only: %w", p.dir, err)
		}
		return nil
	}
	if err := unix.Unmount(p.dir, flags); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("unmounting %s: %w", p.dir, err)
	}
	return nil
}

// WriteImage writes a system image of size bytes holding root at path,
// labelled label, and syncs it to disk before returning. path must not
// exist (see createNew); on error it is removed.
func WriteImage(path string, root *fstree.Node, label string, size int64, progress func(done, total int64)) (st ext4.Stats, err error) {
	f, err := createNew(path)
	if err != nil {
		return ext4.Stats{}, err
	}
	defer func() { err = closeNew(f, err) }()
	// A new file reads as zeros, which ext4.Write requires where it does
	// not write.
	if st, err = ext4.Write(f, root, ext4.Options{Label: label, Size: size, ModTime: time.Now(), Progress: progress}); err != nil {
		return st, err
	}
	return st, f.Sync()
}

// createNew creates an image file that must not exist yet, so that two
// writers never share one: the agent's lock keeps a second install,
// upgrade or reset out, this keeps out anything else, and a caller that
// did not clear a leftover fails instead of writing into it.
func createNew(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%s already exists: another writer has it, or it was left over: %w", path, err)
	}
	return f, err
}

// closeNew closes a file createNew made and, when writing it failed,
// removes it: being created exclusively, it is this writer's alone.
func closeNew(f *os.File, err error) error {
	if cerr := f.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// Relabel sets the file system label of an image.
func Relabel(path, label string) error { return Run("tune2fs", "-L", label, path) }

// SyncDir makes renames in dir durable.
func SyncDir(dir string) error {
	f, err := os.Open(dir) // fsync works on a read-only descriptor
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// CopySparse copies a file to dst, which must not exist (see createNew),
// leaving holes where the source has zeros, and syncs it.
func CopySparse(dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := createNew(dst)
	if err != nil {
		return err
	}
	defer func() { err = closeNew(out, err) }()
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 {
			chunk := buf[:n]
			for len(chunk) > 0 {
				blk := chunk[:min(4096, len(chunk))]
				if !allZero(blk) {
					if _, err := out.WriteAt(blk, off); err != nil {
						return err
					}
				}
				off += int64(len(blk))
				chunk = chunk[len(blk):]
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := out.Truncate(st.Size()); err != nil {
		return err
	}
	return out.Sync()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
