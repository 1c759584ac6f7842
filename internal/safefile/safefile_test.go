package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests run as root (the agent does): what a user plants is made the
// user's (uid 1000) with Lchown.
const user = 1000

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// put writes a root-owned file below root.
func put(t *testing.T, root, p, content string, mode os.FileMode) {
	t.Helper()
	full := filepath.Join(root, p)
	must(t, os.MkdirAll(filepath.Dir(full), 0o755))
	must(t, os.WriteFile(full, []byte(content), mode))
	must(t, os.Chmod(full, mode))
}

// mkdir makes a directory below root with mode and owner uid.
func mkdir(t *testing.T, root, p string, mode os.FileMode, uid int) {
	t.Helper()
	full := filepath.Join(root, p)
	must(t, os.MkdirAll(full, 0o755))
	must(t, os.Chmod(full, mode))
	must(t, os.Lchown(full, uid, uid))
}

// link plants a symbolic link below root owned by uid.
func link(t *testing.T, root, target, p string, uid int) {
	t.Helper()
	full := filepath.Join(root, p)
	must(t, os.Symlink(target, full))
	must(t, os.Lchown(full, uid, uid))
}

type fileState struct {
	content  string
	mode     os.FileMode
	uid, gid uint32
}

func state(t *testing.T, root, p string) fileState {
	t.Helper()
	full := filepath.Join(root, p)
	st, err := os.Lstat(full)
	if err != nil {
		t.Fatal(err)
	}
	s := fileState{mode: st.Mode(), uid: st.Sys().(*syscall.Stat_t).Uid, gid: st.Sys().(*syscall.Stat_t).Gid}
	if st.Mode().IsRegular() {
		data, err := os.ReadFile(full)
		must(t, err)
		s.content = string(data)
	}
	return s
}

// refused checks err is a refusal naming the link.
func refused(t *testing.T, err error, link string) {
	t.Helper()
	if !errors.Is(err, ErrUntrustedLink) || !strings.Contains(err.Error(), "symbolic link "+link+" -> ") {
		t.Errorf("error %v; want a refused symbolic link %s", err, link)
	}
}

// both runs the test with openat2 and with the openat fallback of kernels
// before 5.6.
func both(t *testing.T, test func(t *testing.T)) {
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("fallback=%v", fallback), func(t *testing.T) {
			old := noOpenat2.Load()
			noOpenat2.Store(fallback)
			defer noOpenat2.Store(old)
			test(t)
		})
	}
}

func TestWriteFile(t *testing.T) {
	both(t, func(t *testing.T) {
		root := t.TempDir()
		must(t, WriteFile(root, "/a/b/c.txt", []byte("hello\n"), 0o666, user, user))
		if got := state(t, root, "a/b/c.txt"); got != (fileState{"hello\n", 0o666, user, user}) {
			t.Errorf("new file %+v: the mode must be as given, not masked", got)
		}
		if got := state(t, root, "a/b"); got.mode != fs.ModeDir|0o755 || got.uid != 0 {
			t.Errorf("missing parent made %+v; want 0755 root's", got)
		}
		must(t, WriteFile(root, "/a/b/c.txt", []byte("again"), 0o600, -1, -1))
		if got := state(t, root, "a/b/c.txt"); got != (fileState{"again", 0o600, 0, 0}) {
			t.Errorf("replaced file %+v", got)
		}
		// A hard link to another file is replaced, not written through.
		put(t, root, "/etc/shadow", "secret", 0o640)
		must(t, os.Link(filepath.Join(root, "etc/shadow"), filepath.Join(root, "a/hard")))
		must(t, WriteFile(root, "/a/hard", []byte("x"), 0o644, -1, -1))
		if got := state(t, root, "etc/shadow"); got.content != "secret" {
			t.Errorf("written through a hard link: %+v", got)
		}
		// ".." never leaves the root.
		must(t, WriteFile(root, "/../../escaped", []byte("x"), 0o644, -1, -1))
		if _, err := os.Stat(filepath.Join(root, "escaped")); err != nil {
			t.Errorf("/../../escaped not written below the root: %v", err)
		}
		if entries, _ := os.ReadDir(filepath.Join(root, "a/b")); len(entries) != 1 {
			t.Errorf("temporary files left: %v", entries)
		}
	})
}

func TestUserLinksRefused(t *testing.T) {
	both(t, func(t *testing.T) {
		root := t.TempDir()
		put(t, root, "/etc/shadow", "root:x:::\n", 0o640)
		mkdir(t, root, "/etc/secret", 0o700, 0)
		put(t, root, "/etc/secret/config", "s", 0o600)
		mkdir(t, root, "/home/u", 0o755, user)
		mkdir(t, root, "/home/u/.kube", 0o755, user)
		link(t, root, "../../../etc/shadow", "/home/u/.kube/config", user)
		link(t, root, "../../etc/secret", "/home/u/dir", user)
		// A link root made in the user's home is as much the user's: they
		// can replace it.
		link(t, root, "../../etc/secret", "/home/u/rootlink", 0)
		// Below a user's directory even a root-owned directory's links are
		// out: the user can move that directory around.
		mkdir(t, root, "/home/u/rootdir", 0o755, 0)
		link(t, root, "../../../etc/secret", "/home/u/rootdir/l", 0)
		// A root directory open to others (as /tmp) holds others' links.
		mkdir(t, root, "/tmp", 0o777|os.ModeSticky, 0)
		link(t, root, "../etc/secret", "/tmp/l", 0)
		before := []fileState{state(t, root, "etc/shadow"), state(t, root, "etc/secret"), state(t, root, "etc/secret/config")}

		refused(t, WriteFile(root, "/home/u/.kube/config", []byte("x"), 0o666, user, user), "/home/u/.kube/config")
		for _, l := range []string{"/home/u/dir", "/home/u/rootlink", "/home/u/rootdir/l", "/tmp/l"} {
			refused(t, WriteFile(root, l+"/config", []byte("x"), 0o666, user, user), l)
			refused(t, Dir(root, l, 0o777, user, user), l)
			refused(t, Dir(root, l+"/sub", 0o777, user, user), l)
			_, err := ReadFile(root, l+"/config")
			refused(t, err, l)
		}
		_, err := ReadFile(root, "/home/u/.kube/config")
		refused(t, err, "/home/u/.kube/config")
		_, err = Lstat(root, "/home/u/dir/config")
		refused(t, err, "/home/u/dir")

		after := []fileState{state(t, root, "etc/shadow"), state(t, root, "etc/secret"), state(t, root, "etc/secret/config")}
		for i := range before {
			if before[i] != after[i] {
				t.Errorf("changed through a link: %+v, was %+v", after[i], before[i])
			}
		}
		if entries, _ := os.ReadDir(filepath.Join(root, "etc/secret")); len(entries) != 1 {
			t.Errorf("something was made in /etc/secret: %v", entries)
		}
		if got := state(t, root, "home/u/.kube/config"); got.mode&fs.ModeSymlink == 0 {
			t.Errorf("the refused link was replaced: %+v", got)
		}
	})
}

// The system's own links (root's, in directories only root can write) are
// followed, below the root even when absolute.
func TestSystemLinksFollowed(t *testing.T) {
	both(t, func(t *testing.T) {
		root := t.TempDir()
		mkdir(t, root, "/run", 0o755, 0)
		mkdir(t, root, "/usr/lib", 0o755, 0)
		mkdir(t, root, "/var", 0o755, 0)
		name := fmt.Sprintf("safefile-test-%d", time.Now().UnixNano())
		link(t, root, "/run", "/var/run", 0) // absolute: the stage root's /run
		link(t, root, "usr/lib", "/lib", 0)

		must(t, WriteFile(root, "/var/run/"+name, []byte("pid"), 0o644, -1, -1))
		if got := state(t, root, "run/"+name); got.content != "pid" {
			t.Errorf("/var/run/%s not written to the root's /run: %+v", name, got)
		}
		if _, err := os.Lstat("/run/" + name); err == nil {
			os.Remove("/run/" + name)
			t.Errorf("an absolute link was followed out of the root")
		}
		must(t, Dir(root, "/lib/modules", 0o750, user, user))
		if got := state(t, root, "usr/lib/modules"); got.mode != fs.ModeDir|0o750 || got.uid != user {
			t.Errorf("/lib/modules %+v", got)
		}
		if data, err := ReadFile(root, "/var/run/"+name); err != nil || string(data) != "pid" {
			t.Errorf("ReadFile through /var/run: %q %v", data, err)
		}
		// A trusted final link: read through, replaced by a write.
		put(t, root, "/run/resolv.conf", "nameserver 127.0.0.53\n", 0o644)
		mkdir(t, root, "/etc", 0o755, 0)
		link(t, root, "../run/resolv.conf", "/etc/resolv.conf", 0)
		if data, err := ReadFile(root, "/etc/resolv.conf"); err != nil || string(data) != "nameserver 127.0.0.53\n" {
			t.Errorf("ReadFile through /etc/resolv.conf: %q %v", data, err)
		}
		if st, err := Lstat(root, "/etc/resolv.conf"); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
			t.Errorf("Lstat followed the final link: %v", err)
		}
		must(t, WriteFile(root, "/etc/resolv.conf", []byte("nameserver 10.0.2.3\n"), 0o644, -1, -1))
		if got := state(t, root, "etc/resolv.conf"); got.content != "nameserver 10.0.2.3\n" {
			t.Errorf("/etc/resolv.conf %+v; want the link replaced by the file", got)
		}
		if got := state(t, root, "run/resolv.conf"); got.content != "nameserver 127.0.0.53\n" {
			t.Errorf("written through /etc/resolv.conf: %+v", got)
		}
		// Loops end.
		link(t, root, "b", "/a", 0)
		link(t, root, "a", "/b", 0)
		if err := WriteFile(root, "/a/x", nil, 0o644, -1, -1); !errors.Is(err, syscall.ELOOP) {
			t.Errorf("link loop: %v", err)
		}
	})
}

func TestDir(t *testing.T) {
	both(t, func(t *testing.T) {
		root := t.TempDir()
		must(t, Dir(root, "/home/u/.ssh", 0o700, user, user))
		if got := state(t, root, "home/u/.ssh"); got.mode != fs.ModeDir|0o700 || got.uid != user || got.gid != user {
			t.Errorf(".ssh %+v", got)
		}
		if got := state(t, root, "home/u"); got.mode != fs.ModeDir|0o755 || got.uid != 0 {
			t.Errorf("parent %+v", got)
		}
		// An existing directory gets the mode and owner asked for; -1 keeps.
		mkdir(t, root, "/srv/x", 0o777, user)
		must(t, Dir(root, "/srv/x", 0o750|fs.ModeSetgid, -1, 0))
		if got := state(t, root, "srv/x"); got.mode != fs.ModeDir|fs.ModeSetgid|0o750 || got.uid != user || got.gid != 0 {
			t.Errorf("existing directory %+v", got)
		}
		put(t, root, "/srv/file", "", 0o644)
		if err := Dir(root, "/srv/file", 0o755, -1, -1); !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("Dir on a file: %v", err)
		}
	})
}

func TestReadFile(t *testing.T) {
	root := t.TempDir()
	if _, err := ReadFile(root, "/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// A fifo planted where a file is read must not hang the boot.
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	done := make(chan error)
	go func() { _, err := ReadFile(root, "/fifo"); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("read a fifo")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFile hangs on a fifo")
	}
}

// Writes of one path at the same time each use their own temporary file:
// all succeed and the file is one of them, whole.
func TestConcurrentWrites(t *testing.T) {
	root := t.TempDir()
	// The fixed temporary name of the code before this package, planted:
	// it is neither used nor followed.
	put(t, root, "/etc/shadow", "secret", 0o640)
	mkdir(t, root, "/home/u", 0o755, user)
	link(t, root, "../../etc/shadow", "/home/u/f.kairos-tmp", user)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = WriteFile(root, "/home/u/f", []byte(strings.Repeat(fmt.Sprint(i%10), 1<<16)), 0o600, user, user)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(root, "home/u/f"))
	if err != nil || len(data) != 1<<16 || strings.Trim(string(data), string(data[:1])) != "" {
		t.Errorf("the file is not one whole write: %d bytes, %v", len(data), err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "home/u"))
	if len(entries) != 2 {
		t.Errorf("entries %v; want f and the planted link only", entries)
	}
	if got := state(t, root, "etc/shadow"); got.content != "secret" || got.mode != 0o640 {
		t.Errorf("shadow %+v", got)
	}
}

// A lock file is made 0600 when missing and opened as it is otherwise; no
// link in its place is followed, a user's or root's, and no fifo hangs it.
func TestOpenLockFile(t *testing.T) {
	both(t, func(t *testing.T) {
		root := t.TempDir()
		f, err := OpenLockFile(root, "/etc/.pwd.lock", 0o600)
		must(t, err)
		f.Close()
		if got := state(t, root, "etc/.pwd.lock"); got != (fileState{"", 0o600, 0, 0}) {
			t.Errorf("new lock file %+v; want empty, 0600, root's", got)
		}
		put(t, root, "/etc/old.lock", "pid", 0o644)
		f, err = OpenLockFile(root, "/etc/old.lock", 0o600)
		must(t, err)
		f.Close()
		if got := state(t, root, "etc/old.lock"); got != (fileState{"pid", 0o644, 0, 0}) {
			t.Errorf("existing lock file %+v; want it untouched", got)
		}

		put(t, root, "/etc/shadow", "secret", 0o640)
		mkdir(t, root, "/home/u", 0o755, user)
		link(t, root, "../../etc/shadow", "/home/u/lock", user)
		_, err = OpenLockFile(root, "/home/u/lock", 0o600)
		refused(t, err, "/home/u/lock")
		link(t, root, "missing", "/etc/root.lock", 0)
		if _, err = OpenLockFile(root, "/etc/root.lock", 0o600); err == nil || !strings.Contains(err.Error(), "a symbolic link, not followed") {
			t.Errorf("root's link: %v; want it refused", err)
		}
		if _, err := os.Lstat(filepath.Join(root, "etc/missing")); err == nil {
			t.Error("created through root's link")
		}
		if got := state(t, root, "etc/shadow"); got != (fileState{"secret", 0o640, 0, 0}) {
			t.Errorf("shadow %+v", got)
		}

		must(t, syscall.Mkfifo(filepath.Join(root, "etc/fifo"), 0o600))
		done := make(chan error)
		go func() { _, err := OpenLockFile(root, "/etc/fifo", 0o600); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Error("a fifo opened as a lock file")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("OpenLockFile hangs on a fifo")
		}
	})
}
