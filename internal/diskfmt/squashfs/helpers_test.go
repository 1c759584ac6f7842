package squashfs

import (
	"bytes"
	"fmt"
	"github.com/kairos-io/kairos/internal/fstree"
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

// ---- expected listings, computed from the source tree ----

type srcEntry struct {
	rel string // "" for the root
	st  unix.Stat_t
}

// walkSorted lists the tree in the order unsquashfs prints it: depth first,
// entries sorted bytewise.
func walkSorted(t *testing.T, root string) []srcEntry {
	t.Helper()
	var out []srcEntry
	var walk func(rel string)
	walk = func(rel string) {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, rel), &st); err != nil {
			t.Fatal(err)
		}
		out = append(out, srcEntry{rel, st})
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return
		}
		ents, err := os.ReadDir(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		for _, n := range names {
			walk(filepath.Join(rel, n))
		}
	}
	walk("")
	return out
}

// expectedPseudo renders the tree as `unsquashfs -pf` does (squashfs-tools
// 4.5.1 pseudo file: one definition per entry, hardlinks as "L" to the
// first name, then every regular file's content in order).
func expectedPseudo(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	var data bytes.Buffer
	first := map[uint64]string{}
	for _, e := range walkSorted(t, root) {
		name := e.rel
		if name == "" {
			name = "/"
		}
		st := e.st
		typ := st.Mode & unix.S_IFMT
		if typ != unix.S_IFDIR && st.Nlink > 1 {
			if f, ok := first[st.Ino]; ok {
				fmt.Fprintf(&b, "%s L %s\n", name, f)
				continue
			}
			first[st.Ino] = name
		}
		common := fmt.Sprintf("%d %o %d %d", st.Mtim.Sec, st.Mode&0o7777, st.Uid, st.Gid)
		switch typ {
		case unix.S_IFDIR:
			fmt.Fprintf(&b, "%s D %s\n", name, common)
		case unix.S_IFREG:
			fmt.Fprintf(&b, "%s R %s %d %d\n", name, common, st.Size, data.Len())
			content, err := os.ReadFile(filepath.Join(root, e.rel))
			if err != nil {
				t.Fatal(err)
			}
			data.Write(content)
		case unix.S_IFLNK:
			target, err := os.Readlink(filepath.Join(root, e.rel))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s S %s %s\n", name, common, target)
		case unix.S_IFCHR, unix.S_IFBLK:
			c := "C"
			if typ == unix.S_IFBLK {
				c = "B"
			}
			major, minor := unsquashfsDev(st.Rdev)
			fmt.Fprintf(&b, "%s %s %s %d %d\n", name, c, common, major, minor)
		case unix.S_IFIFO:
			fmt.Fprintf(&b, "%s I %s f\n", name, common)
		case unix.S_IFSOCK:
			fmt.Fprintf(&b, "%s I %s s\n", name, common)
		}
	}
	b.WriteString("#\n# START OF DATA - DO NOT MODIFY\n#\n")
	b.Write(data.Bytes())
	return b.String()
}

// unsquashfsDev returns the device numbers as unsquashfs 4.5.1 prints them
// in -lln and -pf output: it takes the inode's 32-bit rdev (the kernel's
// new_encode_dev layout, which mksquashfs writes and the kernel and
// unsquashfs' own mknod decode correctly) as major = (signed) rdev >> 8,
// minor = rdev & 0xff, which is right only for minors below 256. An image
// made by mksquashfs 4.5.1 from the same device prints the same numbers.
func unsquashfsDev(rdev uint64) (major, minor int64) {
	ma, mi := unix.Major(rdev), unix.Minor(rdev)
	enc := mi&0xff | ma<<8 | (mi&^0xff)<<12
	return int64(int32(enc) >> 8), int64(enc & 0xff)
}

// lsMode renders a st_mode as ls -l does.
func lsMode(m uint32) string {
	typ := map[uint32]byte{unix.S_IFDIR: 'd', unix.S_IFREG: '-', unix.S_IFLNK: 'l', unix.S_IFCHR: 'c',
		unix.S_IFBLK: 'b', unix.S_IFIFO: 'p', unix.S_IFSOCK: 's'}[m&unix.S_IFMT]
	b := []byte{typ}
	for i, shift := range []uint{6, 3, 0} {
		bits := (m >> shift) & 7
		rwx := []byte("---")
		if bits&4 != 0 {
			rwx[0] = 'r'
		}
		if bits&2 != 0 {
			rwx[1] = 'w'
		}
		if bits&1 != 0 {
			rwx[2] = 'x'
		}
		special := []uint32{unix.S_ISUID, unix.S_ISGID, unix.S_ISVTX}[i]
		if m&special != 0 {
			c := byte('s')
			if i == 2 {
				c = 't'
			}
			if rwx[2] == '-' {
				c -= 'a' - 'A'
			}
			rwx[2] = c
		}
		b = append(b, rwx...)
	}
	return string(b)
}

// expectedListing renders the tree as `unsquashfs -lln -UTC` lines, keyed
// by path, without directory sizes (squashfs reports its listing size).
func expectedListing(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range walkSorted(t, root) {
		st := e.st
		size := strconv.FormatInt(st.Size, 10)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			size = "-"
		case unix.S_IFCHR, unix.S_IFBLK:
			major, minor := unsquashfsDev(st.Rdev)
			size = fmt.Sprintf("%d,%d", major, minor)
		case unix.S_IFIFO, unix.S_IFSOCK:
			size = "0"
		}
		line := fmt.Sprintf("%s %d/%d %s %s", lsMode(st.Mode), st.Uid, st.Gid, size,
			time.Unix(st.Mtim.Sec, 0).UTC().Format("2006-01-02 15:04"))
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			target, err := os.Readlink(filepath.Join(root, e.rel))
			if err != nil {
				t.Fatal(err)
			}
			line += " -> " + target
		}
		out[filepath.Join("squashfs-root", e.rel)] = line
	}
	return out
}

// parseListing parses `unsquashfs -lln -UTC` output into the same form.
func parseListing(t *testing.T, out string) map[string]string {
	t.Helper()
	res := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("unexpected listing line %q", line)
		}
		size := f[2]
		if (f[0][0] == 'c' || f[0][0] == 'b') && strings.HasSuffix(f[2], ",") { // "maj,  min"
			size = f[2] + f[3]
			f = append(f[:3], f[4:]...)
		}
		if f[0][0] == 'd' {
			size = "-"
		}
		entry := fmt.Sprintf("%s %s %s %s %s", f[0], f[1], size, f[3], f[4])
		if len(f) > 6 && f[6] == "->" {
			entry += " -> " + strings.Join(f[7:], " ")
		}
		res[f[5]] = entry
	}
	return res
}

// ---- comparing a tree with the source (extracted or mounted) ----

type compareOpts struct {
	symlinkTimes bool // compare symlinks' own mtimes
	dirNlink     bool // compare directories' link counts
}

func listXattrs(t *testing.T, p string) map[string]string {
	t.Helper()
	sz, err := unix.Llistxattr(p, nil)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	res := map[string]string{}
	if sz == 0 {
		return res
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		vs, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			t.Fatalf("lgetxattr %s %s: %v", p, name, err)
		}
		v := make([]byte, vs)
		if vs > 0 {
			if vs, err = unix.Lgetxattr(p, name, v); err != nil {
				t.Fatalf("lgetxattr %s %s: %v", p, name, err)
			}
		}
		res[name] = string(v[:vs])
	}
	return res
}

// compareTrees checks that dst holds exactly src: types, permissions,
// owners, mtimes, sizes, contents, link targets, device numbers, xattrs,
// and hardlinks (names of one source inode share one inode in dst, whose
// link count is the number of names).
func compareTrees(t *testing.T, src, dst string, o compareOpts) {
	t.Helper()
	groups := map[uint64][]string{}
	seen := map[string]bool{}
	for _, e := range walkSorted(t, src) {
		seen[e.rel] = true
		sp, dp := filepath.Join(src, e.rel), filepath.Join(dst, e.rel)
		var ds unix.Stat_t
		if err := unix.Lstat(dp, &ds); err != nil {
			t.Errorf("%s: missing in %s: %v", e.rel, dst, err)
			continue
		}
		ss := e.st
		typ := ss.Mode & unix.S_IFMT
		if ss.Mode != ds.Mode {
			t.Errorf("/%s: mode %s, want %s", e.rel, lsMode(ds.Mode), lsMode(ss.Mode))
		}
		if ss.Uid != ds.Uid || ss.Gid != ds.Gid {
			t.Errorf("/%s: owner %d:%d, want %d:%d", e.rel, ds.Uid, ds.Gid, ss.Uid, ss.Gid)
		}
		if (typ != unix.S_IFLNK || o.symlinkTimes) && ss.Mtim.Sec != ds.Mtim.Sec {
			t.Errorf("/%s: mtime %d, want %d", e.rel, ds.Mtim.Sec, ss.Mtim.Sec)
		}
		if typ != unix.S_IFDIR && ss.Nlink > 1 {
			groups[ss.Ino] = append(groups[ss.Ino], e.rel)
		}
		if typ == unix.S_IFDIR && o.dirNlink && ss.Nlink != ds.Nlink {
			t.Errorf("/%s: directory link count %d, want %d", e.rel, ds.Nlink, ss.Nlink)
		}
		switch typ {
		case unix.S_IFREG:
			if ss.Size != ds.Size {
				t.Errorf("/%s: size %d, want %d", e.rel, ds.Size, ss.Size)
				continue
			}
			want, err1 := os.ReadFile(sp)
			got, err2 := os.ReadFile(dp)
			if err1 != nil || err2 != nil {
				t.Fatalf("/%s: reading: %v %v", e.rel, err1, err2)
			}
			if !bytes.Equal(want, got) {
				t.Errorf("/%s: content differs", e.rel)
			}
		case unix.S_IFLNK:
			want, _ := os.Readlink(sp)
			got, err := os.Readlink(dp)
			if err != nil || got != want {
				t.Errorf("/%s: link target %q (%v), want %q", e.rel, got, err, want)
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			if ss.Rdev != ds.Rdev {
				t.Errorf("/%s: device %d:%d, want %d:%d", e.rel, unix.Major(ds.Rdev), unix.Minor(ds.Rdev), unix.Major(ss.Rdev), unix.Minor(ss.Rdev))
			}
		}
		wantX, gotX := listXattrs(t, sp), listXattrs(t, dp)
		if fmt.Sprint(wantX) != fmt.Sprint(gotX) {
			t.Errorf("/%s: xattrs %q, want %q", e.rel, gotX, wantX)
		}
	}
	// Nothing extra in dst.
	if err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		if rel == "." {
			rel = ""
		}
		if !seen[rel] {
			t.Errorf("/%s: unexpected entry in %s", rel, dst)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, names := range groups {
		var ino uint64
		for i, n := range names {
			var ds unix.Stat_t
			if err := unix.Lstat(filepath.Join(dst, n), &ds); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				ino = ds.Ino
			} else if ds.Ino != ino {
				t.Errorf("hardlinks %v: %s has inode %d, %s has %d", names, names[0], ino, n, ds.Ino)
			}
			if int(ds.Nlink) != len(names) {
				t.Errorf("hardlinks %v: %s has link count %d, want %d", names, n, ds.Nlink, len(names))
			}
		}
	}
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
