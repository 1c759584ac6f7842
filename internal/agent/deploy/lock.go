package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/agent/host"
)

// Lock takes the exclusive lock at path (host.System.LockFile when empty:
// where it lives and why is said there) for the
// whole of an install, upgrade or reset, and returns its release.
//
// A second one is refused at once, naming the process that holds it,
// rather than queued: an upgrade takes minutes, and one that waited would
// then rotate again the image the first had just installed, pushing the
// system that last booted out of passive. The caller runs it again if it
// meant it.
//
// The lock is flock(2) on the open file, so the kernel drops it with the
// process however that ends; the file is never removed (removing it would
// let a third process lock a new file while the second still holds the
// old one).
func Lock(path string) (release func() error, err error) {
	if path == "" {
		path = host.System.LockFile
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// O_NOFOLLOW: never a link planted in the lock's place; close-on-exec
	// (Go's default): stage commands do not inherit it.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another kairos-agent install/upgrade/reset is running (pid %s): %s is locked; nothing was changed", holder(path), path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The holder's pid, for the message of the one refused; only a hint,
	// the flock is the lock.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() error {
		f.Truncate(0)
		return f.Close() // closing the last descriptor releases the flock
	}, nil
}

// holder is the pid the lock holder wrote, or "unknown" when it has not
// written it yet.
func holder(path string) string {
	data, _ := os.ReadFile(path)
	if pid := strings.TrimSpace(string(data)); pid != "" {
		return pid
	}
	return "unknown"
}
