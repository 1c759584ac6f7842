// Package safefile writes, reads and changes files below a root directory
// (the root a stage runs against: "/" on a node, an image's tree when one
// is assembled) without following symbolic links a user could have
// planted.
//
// kairos-agent runs as root and writes into places users own (their home,
// ~/.ssh) on every boot. A plain open, chmod or chown follows whatever link
// the user left there: ~/.ssh/authorized_keys -> /root/.ssh/authorized_keys
// puts the user's key into root's file. Here every path is walked from the
// root, one component at a time, each opened relative to its parent's
// descriptor with symbolic links refused by the kernel; nothing is ever
// looked up again by name after it was checked.
//
// The rule for symbolic links, the same for every operation:
//
//   - A link is followed only when it is root's and every directory from the
//     root down to it is root's and closed to group and others. Nobody but
//     root could have made it, swapped it or moved it there, so it is part
//     of the system, as /var/run -> /run or /lib -> usr/lib on merged-/usr
//     distributions are. The root itself is the caller's anchor and is not
//     judged. The target is resolved below the root, as in a chroot: an
//     absolute target starts again at the root and ".." never climbs above
//     it.
//   - Any other link is refused with an error wrapping ErrUntrustedLink that
//     names the path asked for, the link and its target.
//   - A write never goes through the link that is its last component: the
//     new file is renamed over the link, which replaces it (a trusted link
//     is replaced, an untrusted one refused so the attempt is reported).
package safefile

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/quickrand"
)

// ErrUntrustedLink is wrapped by the error of an operation that met a
// symbolic link someone other than root could have planted.
var ErrUntrustedLink = errors.New("it or a directory above it is not root's alone")

// maxLinks bounds the links followed in one path, as the kernel's 40.
const maxLinks = 40

// Dir makes name (below root) a directory with mode perm and owner uid:gid
// (-1 leaves that id as it is), creating missing parents with mode 0755. An
// existing directory gets the mode and owner too. The mode is set as given,
// not reduced by the umask.
func Dir(root, name string, perm os.FileMode, uid, gid int) error {
	w, err := walk(root, name, name, true)
	if err != nil {
		return err
	}
	defer w.close()
	// The walk holds O_PATH descriptors, enough to look up names; changing
	// the directory needs a real one, opened through "." so no name is
	// looked up again.
	fd, err := unix.Openat(w.dir(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return setOwnerMode(f, perm, uid, gid)
}

// WriteFile replaces name (below root) with a file holding data, with mode
// perm and owner uid:gid (-1: the caller's), creating missing parent
// directories with mode 0755. The file is written under a random name in
// the same directory, synced and renamed into place: a reader sees the old
// file or the new one, and the rename replaces whatever entry name was
// (a link, a hard link to another file) without writing through it.
func WriteFile(root, name string, data []byte, perm os.FileMode, uid, gid int) error {
	return WriteFrom(root, name, bytes.NewReader(data), perm, uid, gid)
}

// WriteFrom is WriteFile with the content read from r, for files too big
// to hold in memory (a bundle's binaries).
func WriteFrom(root, name string, r io.Reader, perm os.FileMode, uid, gid int) error {
	dir, base, err := split(name)
	if err != nil {
		return err
	}
	w, err := walk(root, name, dir, true)
	if err != nil {
		return err
	}
	defer w.close()
	if _, err := w.link(base); err != nil {
		return err
	}
	tmp, f, err := createTemp(w.dir(), base)
	if err != nil {
		return &os.PathError{Op: "create", Path: name, Err: err}
	}
	err = fill(f, r, perm, uid, gid)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(w.dir(), tmp, w.dir(), base)
	}
	if err != nil {
		unix.Unlinkat(w.dir(), tmp, 0)
		return &os.PathError{Op: "write", Path: name, Err: err}
	}
	return nil
}

func fill(f *os.File, r io.Reader, perm os.FileMode, uid, gid int) error {
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	if err := setOwnerMode(f, perm, uid, gid); err != nil {
		return err
	}
	return f.Sync()
}

// Symlink replaces name (below root) with a symbolic link to target,
// creating missing parent directories with mode 0755: the link is made
// under a random name and renamed into place, so nothing at name is
// written through.
func Symlink(root, name, target string) error {
	dir, base, err := split(name)
	if err != nil {
		return err
	}
	w, err := walk(root, name, dir, true)
	if err != nil {
		return err
	}
	defer w.close()
	var b [8]byte
	quickrand.Read(b[:])
	tmp := "." + base[:min(len(base), 200)] + ".kairos-" + hex.EncodeToString(b[:])
	if err := unix.Symlinkat(target, w.dir(), tmp); err != nil {
		return &os.PathError{Op: "symlink", Path: name, Err: err}
	}
	if err := unix.Renameat(w.dir(), tmp, w.dir(), base); err != nil {
		unix.Unlinkat(w.dir(), tmp, 0)
		return &os.PathError{Op: "symlink", Path: name, Err: err}
	}
	return nil
}

// setOwnerMode works on the descriptor, never a name: what it changes is
// what was opened, whatever happens to the name meanwhile. The owner goes
// first because a chown clears the setuid and setgid bits.
func setOwnerMode(f *os.File, perm os.FileMode, uid, gid int) error {
	if err := f.Chown(uid, gid); err != nil {
		return err
	}
	return f.Chmod(perm)
}

// createTemp makes a new file beside base, named after it with a random
// suffix so no name can be planted in advance (and O_EXCL|O_NOFOLLOW would
// refuse one anyway). The suffix comes last so a temporary file never
// matches a pattern such as *.yaml.
func createTemp(dirfd int, base string) (string, *os.File, error) {
	if len(base) > 200 {
		base = base[:200] // stay below NAME_MAX with the suffix
	}
	for range 10 {
		var b [8]byte
		quickrand.Read(b[:])
		tmp := "." + base + ".kairos-" + hex.EncodeToString(b[:])
		fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return tmp, os.NewFile(uintptr(fd), tmp), nil
	}
	return "", nil, unix.EEXIST
}

// ReadFile reads the regular file name (below root). A missing file gives
// an error matching fs.ErrNotExist.
func ReadFile(root, name string) ([]byte, error) {
	dir, base, err := split(name)
	if err != nil {
		return nil, err
	}
	w, err := walk(root, name, dir, false)
	if err != nil {
		return nil, err
	}
	defer w.close()
	for {
		// O_NONBLOCK: a fifo planted in the file's place must not hang the
		// boot; anything but a regular file is refused below.
		fd, err := openat(w.dir(), base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err == nil {
			f := os.NewFile(uintptr(fd), name)
			defer f.Close()
			if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
				return nil, &os.PathError{Op: "read", Path: name, Err: errors.New("not a regular file")}
			}
			data, err := io.ReadAll(f)
			if err != nil {
				return nil, &os.PathError{Op: "read", Path: name, Err: err}
			}
			return data, nil
		}
		target, lerr := w.link(base)
		if lerr != nil {
			return nil, lerr
		}
		if target == "" {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		// A trusted link: go on with its target's directory and name.
		if err := w.follow(target); err != nil {
			return nil, err
		}
		tdir, tbase := path.Split(target)
		if err := w.resolve(tdir, false); err != nil {
			return nil, err
		}
		if base = tbase; base == "" || base == "." || base == ".." {
			return nil, &os.PathError{Op: "read", Path: name, Err: unix.EISDIR}
		}
	}
}

// Lstat describes name (below root) itself, a link if it is one; the
// directories on the way are walked by the rule above.
func Lstat(root, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	dir, base, err := split(name)
	if err != nil {
		return st, err
	}
	w, err := walk(root, name, dir, false)
	if err != nil {
		return st, err
	}
	defer w.close()
	if err := unix.Fstatat(w.dir(), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &os.PathError{Op: "lstat", Path: name, Err: err}
	}
	return st, nil
}

// OpenLockFile opens the regular file name (below root) for writing, for
// the caller to take fcntl(2) locks on, as /etc/.pwd.lock for lckpwdf(3):
// missing, it is created with mode perm (less the umask), and its parents
// with mode 0755. The content is neither read nor changed.
//
// Unlike the other operations, a symbolic link at name is never followed,
// not even root's: opening it would create or lock whatever it points to,
// and a lock file cannot be renamed over to replace the link as a write
// does, since every other locker holds the file by that name.
func OpenLockFile(root, name string, perm os.FileMode) (*os.File, error) {
	dir, base, err := split(name)
	if err != nil {
		return nil, err
	}
	w, err := walk(root, name, dir, true)
	if err != nil {
		return nil, err
	}
	defer w.close()
	// O_NONBLOCK: a fifo in the lock's place fails (ENXIO) instead of
	// hanging the boot; anything but a regular file is refused below.
	fd, err := openat(w.dir(), base, unix.O_WRONLY|unix.O_CREAT|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		// A link someone else could have planted is told as every other
		// refusal is; root's own link is refused too, by the rule above.
		if _, lerr := w.link(base); lerr != nil {
			return nil, lerr
		}
		if errors.Is(err, unix.ELOOP) {
			err = errors.New("a symbolic link, not followed for a lock file")
		}
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: name, Err: errors.New("not a regular file")}
	}
	return f, nil
}

// split cuts name into the directory to walk and the last component, which
// must be a name (not "/", "." or ".."). A ".." in dir is left to the walk,
// which goes to the parent it has open, as the kernel would.
func split(name string) (string, string, error) {
	dir, base := path.Split(name)
	if base == "" || base == "." || base == ".." {
		return "", "", &os.PathError{Op: "open", Path: name, Err: errors.New("no file name")}
	}
	return dir, base, nil
}

// walker holds the directories from the root to where a walk got, each open
// with O_PATH: fds[0] is the root. They are the physical path, so ".."
// (from the path or a link's target) is the parent on the stack, and never
// above the root.
type walker struct {
	name string   // the path asked for, for errors
	fds  []int    // open directories, root first
	at   []string // their names below the root, for errors
	// rootOnly[i]: fds[0..i] are all root's and closed to group and others
	// (fds[0], the anchor, counts as such).
	rootOnly []bool
	links    int
}

// walk opens root, then the directory dir below it; create makes missing
// directories (mode 0755) on the way. name is what errors call the path.
func walk(root, name, dir string, create bool) (*walker, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	w := &walker{name: name, fds: []int{fd}, rootOnly: []bool{true}}
	if err := w.resolve(dir, create); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *walker) close() {
	for _, fd := range w.fds {
		unix.Close(fd)
	}
	w.fds = nil
}

func (w *walker) dir() int { return w.fds[len(w.fds)-1] }

// where is the path (below the root) of name in the current directory.
func (w *walker) where(name string) string {
	return "/" + path.Join(append(append([]string{}, w.at...), name)...)
}

// up goes back to the directory at depth n (0 is the root).
func (w *walker) up(n int) {
	for len(w.fds) > n+1 {
		unix.Close(w.dir())
		w.fds = w.fds[:len(w.fds)-1]
		w.at = w.at[:len(w.at)-1]
		w.rootOnly = w.rootOnly[:len(w.rootOnly)-1]
	}
}

// resolve walks the directories of p from the current one (from the root
// when p is absolute).
func (w *walker) resolve(p string, create bool) error {
	if strings.HasPrefix(p, "/") {
		w.up(0)
	}
	parts := strings.Split(p, "/")
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			w.up(max(len(w.fds)-2, 0))
			continue
		}
		fd, err := openDir(w.dir(), c)
		if errors.Is(err, unix.ENOENT) && create {
			if err := unix.Mkdirat(w.dir(), c, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				return &os.PathError{Op: "mkdir", Path: w.where(c), Err: err}
			}
			fd, err = openDir(w.dir(), c)
		}
		if err == nil {
			if err := w.push(fd, c); err != nil {
				return err
			}
			continue
		}
		target, lerr := w.link(c)
		if lerr != nil {
			return lerr
		}
		if target == "" {
			return &os.PathError{Op: "open", Path: w.where(c), Err: err}
		}
		if err := w.follow(target); err != nil {
			return err
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	return nil
}

// push enters the directory fd, the entry c of the current one.
func (w *walker) push(fd int, c string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return &os.PathError{Op: "stat", Path: w.where(c), Err: err}
	}
	w.rootOnly = append(w.rootOnly, w.rootOnly[len(w.rootOnly)-1] && st.Uid == 0 && st.Mode&0o022 == 0)
	w.fds = append(w.fds, fd)
	w.at = append(w.at, c)
	return nil
}

// follow counts a link about to be followed and, for an absolute target,
// goes back to the root: a stage's root is the target's "/".
func (w *walker) follow(target string) error {
	if w.links++; w.links > maxLinks {
		return &os.PathError{Op: "open", Path: w.name, Err: unix.ELOOP}
	}
	if strings.HasPrefix(target, "/") {
		w.up(0)
	}
	return nil
}

// link says what name in the current directory links to: "" when it is no
// symbolic link (or is gone), the target when it is one that may be
// followed, an error wrapping ErrUntrustedLink when it may not.
func (w *walker) link(name string) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(w.dir(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", nil
	}
	target, err := readlink(w.dir(), name)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: w.where(name), Err: err}
	}
	// Only root can have made this link, replaced it or moved its directory
	// here when the link is root's and so is every directory on the way,
	// none open to group or others. Below a directory a user owns or may
	// write, a link is the user's to plant, whoever owns it.
	if st.Uid != 0 || !w.rootOnly[len(w.rootOnly)-1] {
		err := fmt.Errorf("symbolic link %s -> %s not followed: %w", w.where(name), target, ErrUntrustedLink)
		if w.where(name) != path.Clean("/"+w.name) {
			err = fmt.Errorf("%s: %w", w.name, err)
		}
		return "", err
	}
	return target, nil
}

func readlink(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// noOpenat2 is set once the kernel said it has no openat2 (before 5.6).
var noOpenat2 atomic.Bool

// openat opens one name in dirfd with flags and symbolic links refused:
// by openat2's RESOLVE_NO_SYMLINKS where the kernel has it, else by
// O_NOFOLLOW, which is the same for a single name. mode is the mode of a
// file O_CREAT makes (openat2 refuses one without O_CREAT).
func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	if !noOpenat2.Load() {
		fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{
			Flags:   uint64(flags) | unix.O_NOFOLLOW,
			Mode:    uint64(mode),
			Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		})
		if !errors.Is(err, unix.ENOSYS) {
			return fd, err
		}
		noOpenat2.Store(true)
	}
	return unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW, mode)
}

// openDir opens the directory name in dirfd for looking up names below it.
// A link gives an error (ENOTDIR or ELOOP).
func openDir(dirfd int, name string) (int, error) {
	return openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}
