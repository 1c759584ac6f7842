package squashfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/diskfmt/squashfs/squashfstest"
	"github.com/kairos-io/kairos/internal/fstree"
)

// The judges are the reference tools (unsquashfs 4.5.1) and the kernel.
// These tests create device nodes, chown files, set trusted.* and
// security.* xattrs and loop-mount images, so they need root; they fail,
// rather than skip, without it, so a missing capability cannot hide.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (mknod, chown, trusted.*/security.* xattrs, loop mounts)")
	}
	for _, tool := range []string{"unsquashfs", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (install squashfs-tools / util-linux): %v", tool, err)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func squashfsInfo(t *testing.T, img string) string {
	t.Helper()
	info, err := squashfstest.Info(img)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// capNetRaw is a VFS_CAP_REVISION_2 security.capability value granting
// cap_net_raw=ep, as /usr/bin/ping carries.
var capNetRaw = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// sourceTree describes what buildSourceTree made, for the assertions that
// depend on it.
type sourceTree struct {
	dir            string
	duplicateFiles int   // files identical to an earlier file (size > 0)
	sparseBlocks   int   // full zero blocks
	hardlinks      int   // extra names of hardlinked inodes
	dataBytes      int64 // content bytes, each inode once
}

// buildSourceTree creates, under dir/src, a tree with every kind of entry
// the writer must handle. Sizes are relative to the block size bs, so the
// same tree exercises single blocks, tails and fragments at any block size.
func buildSourceTree(t *testing.T, dir string, bs int) sourceTree {
	t.Helper()
	src := filepath.Join(dir, "src")
	st := sourceTree{dir: src}
	rng := rand.New(rand.NewSource(42))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mkdir := func(p string, perm os.FileMode) {
		t.Helper()
		must(os.MkdirAll(filepath.Join(src, p), 0o755))
		must(os.Chmod(filepath.Join(src, p), perm))
	}
	file := func(p string, data []byte, perm os.FileMode) {
		t.Helper()
		full := filepath.Join(src, p)
		must(os.MkdirAll(filepath.Dir(full), 0o755))
		must(os.WriteFile(full, data, 0o600))
		must(os.Chmod(full, perm)) // after writing: umask and setuid-clearing writes
	}
	text := func(n int) []byte { // compressible, not trivially
		words := []string{"kairos ", "squashfs ", "immutable ", "edge ", "kernel ", "initrd ", "grub\n", "0123 "}
		var b bytes.Buffer
		for b.Len() < n {
			b.WriteString(words[rng.Intn(len(words))])
		}
		return b.Bytes()[:n]
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	xattr := func(p, name string, val []byte) {
		t.Helper()
		if err := unix.Lsetxattr(filepath.Join(src, p), name, val, 0); err != nil {
			t.Fatalf("setting xattr %s on %s: %v (the file system of %s must support user., trusted. and security. xattrs)", name, p, err, dir)
		}
	}

	mkdir("", 0o755)
	// Nested directories and an empty one.
	mkdir("a/b/c/d", 0o750)
	mkdir("empty", 0o700)
	file("a/b/c/d/deep.txt", text(100), 0o644)
	file("a/b/leaf", text(3000), 0o640)

	// Regular files of every shape.
	file("files/empty", nil, 0o644)
	file("files/empty2", nil, 0o600)
	file("files/small", text(17), 0o644)
	file("files/one-block", text(bs), 0o644)
	multi := text(2*bs + 1234)
	file("files/multi-block-tail", multi, 0o644)
	file("files/exact-two-blocks", text(2*bs), 0o644)
	file("files/random", random(bs+77), 0o644) // incompressible: stored raw
	zeros := make([]byte, 3*bs+10)
	zeros[len(zeros)-1] = 1
	file("files/zeros", zeros, 0o644) // three sparse blocks and a tail
	st.sparseBlocks += 3
	file("files/all-zero", make([]byte, 2*bs), 0o644)
	st.sparseBlocks += 2

	// Duplicates: small (fragment-only) and multi-block, plus same-size
	// files with different content (hashed, compared, not merged).
	dupSmall := text(333)
	file("dup/a.txt", dupSmall, 0o644)
	file("dup/b.txt", dupSmall, 0o644)
	file("dup/c-same-size.txt", text(333), 0o644)
	file("dup/big1", multi, 0o644)
	file("dup/big2", multi, 0o755)

	// Modes.
	file("modes/setuid", text(50), 0o755)
	must(os.Chmod(filepath.Join(src, "modes/setuid"), 0o755|os.ModeSetuid))
	file("modes/setgid", text(51), 0o755)
	must(os.Chmod(filepath.Join(src, "modes/setgid"), 0o755|os.ModeSetgid))
	mkdir("modes/sticky", 0o777)
	must(os.Chmod(filepath.Join(src, "modes/sticky"), 0o777|os.ModeSticky))
	mkdir("modes/setgid-dir", 0o775)
	must(os.Chmod(filepath.Join(src, "modes/setgid-dir"), 0o775|os.ModeSetgid))
	file("modes/none", text(5), 0)

	// Hardlinks: a pair in one directory, and a third name elsewhere.
	file("links/target", text(4000), 0o644)
	must(os.Link(filepath.Join(src, "links/target"), filepath.Join(src, "links/hard")))
	must(os.Link(filepath.Join(src, "links/target"), filepath.Join(src, "a/b/hard-elsewhere")))
	st.hardlinks += 2
	file("links/lonely", text(10), 0o644)
	must(os.Link(filepath.Join(src, "links/lonely"), filepath.Join(src, "links/lonely2")))
	st.hardlinks++

	// Symlinks.
	must(os.Symlink("target", filepath.Join(src, "links/relative")))
	must(os.Symlink("/usr/lib/os-release", filepath.Join(src, "links/absolute")))
	must(os.Symlink("../nowhere/at/all", filepath.Join(src, "links/dangling")))
	must(os.Symlink(strings.Repeat("long/", 200)+"end", filepath.Join(src, "links/long-target")))

	// Special files.
	mkdir("dev", 0o755)
	must(unix.Mknod(filepath.Join(src, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(src, "dev/sda1"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 1))))
	must(unix.Mknod(filepath.Join(src, "dev/bigminor"), unix.S_IFCHR|0o600, int(unix.Mkdev(259, 300000))))
	must(unix.Mkfifo(filepath.Join(src, "dev/fifo"), 0o644))
	sock := filepath.Join(src, "dev/sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	must(err)
	must(unix.Bind(fd, &unix.SockaddrUnix{Name: sock}))
	unix.Close(fd)
	must(os.Chmod(sock, 0o755))

	// Names: the longest a Linux name can be, and bytewise ordering
	// ('.' < '0' < 'A' < '_' < 'a').
	long := strings.Repeat("n", 250) + "-tail"
	file("names/"+long, text(20), 0o644)
	for _, n := range []string{".hidden", "0digit", "Upper", "_under", "lower", "lower.ext", "lower-dash"} {
		file("names/"+n, text(len(n)), 0o644)
	}

	// Owners other than root, including a large uid.
	owners := map[string][2]int{
		"files/small":            {1000, 1000},
		"files/multi-block-tail": {1001, 2002},
		"modes/setuid":           {0, 100},
		"a/b":                    {33, 33},
		"links/relative":         {1000, 1000},
		"dev/fifo":               {4242, 4343},
		"names/Upper":            {100000, 100000},
	}
	for p, o := range owners {
		must(os.Lchown(filepath.Join(src, p), o[0], o[1]))
	}

	// Xattrs in every namespace squashfs stores, on files, a directory,
	// the root, a symlink and special files (extended inode types).
	xattr("modes/setuid", "security.capability", capNetRaw)
	xattr("files/small", "user.comment", []byte("hello"))
	xattr("files/small", "user.empty", []byte{})
	xattr("files/small", "trusted.overlay.opaque", []byte("y"))
	xattr("dup/a.txt", "user.same", []byte("1"))
	xattr("dup/b.txt", "user.same", []byte("1")) // same set: one xattr id
	xattr("a/b", "user.dir", []byte("directory xattr"))
	xattr("", "user.root", []byte("root xattr"))
	xattr("links/relative", "trusted.symlink", []byte("on a symlink"))
	xattr("dev/null", "trusted.dev", []byte("device"))
	xattr("dev/fifo", "trusted.fifo", []byte("fifo"))
	xattr("links/target", "security.selinux", []byte("system_u:object_r:bin_t:s0\x00"))
	xattr("files/multi-block-tail", "user.big", bytes.Repeat([]byte("x"), 3000))

	// A directory with more than 256 entries (several directory headers,
	// a directory index) and enough inodes for several metadata blocks.
	for i := 0; i < 700; i++ {
		p := fmt.Sprintf("many/entry-number-%04d-of-the-big-directory", i)
		switch {
		case i%97 == 0:
			mkdir(p, 0o755)
		case i%50 == 1:
			must(os.Symlink(fmt.Sprintf("entry-number-%04d", i-1), filepath.Join(src, p)))
		default:
			file(p, text(i%300), 0o644)
			if i%25 == 0 {
				xattr(p, "user.n", []byte(strings.Repeat(strconv.Itoa(i), 100)))
			}
		}
	}

	// Modification times: distinct, set last, directories after their
	// contents (creating entries changes a directory's mtime).
	var paths []string
	must(filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	sort.Sort(sort.Reverse(sort.StringSlice(paths))) // children before parents
	for i, p := range paths {
		ts := []unix.Timespec{unix.NsecToTimespec(0), unix.NsecToTimespec(time.Unix(1600000000+int64(i)*3607, 0).UnixNano())}
		ts[0] = ts[1]
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}

	// Content bytes, each inode once, and how many non-empty files repeat
	// an earlier file's content (tiny random texts collide too).
	seen := map[uint64]bool{}
	contents := map[string]bool{}
	must(filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		var s unix.Stat_t
		must(unix.Lstat(p, &s))
		if !seen[s.Ino] {
			seen[s.Ino] = true
			st.dataBytes += s.Size
			if s.Size > 0 {
				data, err := os.ReadFile(p)
				must(err)
				if contents[string(data)] {
					st.duplicateFiles++
				}
				contents[string(data)] = true
			}
		}
		return nil
	}))
	return st
}

// writeImage writes root to a new file in dir and returns its path.
func writeImage(t *testing.T, dir, name string, root *fstree.Node, opt Options) (string, Stats) {
	t.Helper()
	path := filepath.Join(dir, name)
	st, err := WriteFile(path, root, opt)
	if err != nil {
		t.Fatalf("writing %s: %v", name, err)
	}
	return path, st
}

// mountImage loop-mounts img read-only on a new directory under dir, and
// unmounts it at cleanup. A mount failure fails the test with the kernel's
// reason (dmesg tail), never skips it.
func mountImage(t *testing.T, dir, img string) string {
	t.Helper()
	mnt, err := os.MkdirTemp(dir, "mnt-")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", img, mnt).CombinedOutput()
	if err != nil {
		dmesg, _ := exec.Command("sh", "-c", "dmesg 2>&1 | tail -5").CombinedOutput()
		t.Fatalf("kernel mount of %s failed: %v\n%s\ndmesg:\n%s", img, err, out, dmesg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
	return mnt
}
