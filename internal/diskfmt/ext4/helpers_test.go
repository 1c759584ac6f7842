package ext4

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/kairos-io/kairos/internal/fstree"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The judges are e2fsprogs (e2fsck, debugfs, dumpe2fs: the reference
// implementation of the format), GRUB's ext2 driver (grub-fstest) and the
// kernel (loop mounts). The tests fail, rather than skip, when a tool or
// root is missing, so that a missing dependency cannot hide a regression:
// ./earthly.sh +test installs the tools (APT_PACKAGES: e2fsprogs,
// grub-common) and runs as root.

// sourceDateEpoch is the time the tests build with.
var sourceDateEpoch = time.Unix(1700000000, 0)

func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s not installed (e2fsprogs, grub-common; ./earthly.sh +test installs them): %v", name, err)
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (loop mounts, mknod, chown, security.* xattrs)")
	}
	needTools(t, "mount", "umount")
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// writeImage writes root to a new file in a temporary directory.
func writeImage(t *testing.T, root *fstree.Node, opt Options) (string, Stats) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.img")
	st, err := WriteFile(img, root, opt)
	if err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	return img, st
}

var fsckLine = regexp.MustCompile(`^(e2fsck [0-9.]+ \(.*\)|Pass [1-5]: Checking .*|.*: [0-9]+/[0-9]+ files \([0-9.]+% non-contiguous\), [0-9]+/[0-9]+ blocks)$`)

// fsck runs `e2fsck -fn` (forced full check, answering no to every fix)
// and requires that it exits 0 and prints nothing but its pass headers
// and summary. It checks the file system again from every backup
// superblock and group descriptor table, as e2fsck would use them to
// repair a damaged primary. It returns the summary line.
func fsck(t *testing.T, img string) string {
	t.Helper()
	summary := fsckWith(t, img)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, superblockSize)
	if _, err := f.ReadAt(sb, superblockOffset); err != nil {
		t.Fatal(err)
	}
	blocks := binary.LittleEndian.Uint32(sb[4:])
	for g := uint32(1); g*blocksPerGroup < blocks; g++ {
		if hasSuper(g) {
			if s := fsckWith(t, img, "-b", fmt.Sprint(g*blocksPerGroup), "-B", fmt.Sprint(blockSize)); s != summary {
				t.Fatalf("e2fsck from the backup superblock of group %d: %s, from the primary: %s", g, s, summary)
			}
		}
	}
	return summary
}

func fsckWith(t *testing.T, img string, args ...string) string {
	t.Helper()
	args = append([]string{"-fn"}, append(args, img)...)
	out, err := exec.Command("e2fsck", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var summary string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !fsckLine.MatchString(l) {
			t.Fatalf("e2fsck %s reports %q:\n%s", strings.Join(args, " "), l, out)
		}
		if strings.Contains(l, "files (") {
			summary = l
		}
	}
	if summary == "" {
		t.Fatalf("e2fsck -fn printed no summary:\n%s", out)
	}
	return summary
}

// debugfs runs commands in one debugfs session and returns each one's
// output. Any message on stderr besides the version banner (debugfs
// reports errors there, e.g. a path not found) fails the test.
func debugfs(t *testing.T, img string, cmds []string) []string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "debugfs.cmds")
	if err := os.WriteFile(script, []byte(strings.Join(cmds, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("debugfs", "-f", script, img)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("debugfs: %v\n%s", err, errb.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		if !strings.HasPrefix(l, "debugfs ") {
			t.Fatalf("debugfs reports: %s", errb.String())
		}
	}
	var res []string
	for _, part := range strings.Split(out.String(), "debugfs: ")[1:] {
		_, body, _ := strings.Cut(part, "\n") // the echoed command
		res = append(res, body)
	}
	if len(res) != len(cmds) {
		t.Fatalf("debugfs: %d outputs for %d commands:\n%s", len(res), len(cmds), out.String())
	}
	return res
}

// unixMode is a node's st_mode, the i_mode ext4 must store.
func unixMode(m fs.FileMode) uint32 {
	mode := uint32(m.Perm())
	switch m.Type() {
	case 0:
		mode |= 0o100000
	case fs.ModeDir:
		mode |= 0o040000
	case fs.ModeSymlink:
		mode |= 0o120000
	case fs.ModeDevice:
		mode |= 0o060000
	case fs.ModeDevice | fs.ModeCharDevice:
		mode |= 0o020000
	case fs.ModeNamedPipe:
		mode |= 0o010000
	case fs.ModeSocket:
		mode |= 0o140000
	}
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

func readAll(t *testing.T, n *fstree.Node) []byte {
	t.Helper()
	if n.Size == 0 && n.Open == nil {
		return nil
	}
	rc, err := n.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// walk calls fn for every node under n (n included) with its path.
func walk(n *fstree.Node, path string, fn func(path string, n *fstree.Node)) {
	fn(path, n)
	for _, c := range n.Children {
		walk(c, strings.TrimSuffix(path, "/")+"/"+c.Name, fn)
	}
}

var (
	statInode = regexp.MustCompile(`Inode: (\d+)\s+Type: [A-Za-z ]+?\s+Mode:\s+(\d+)\s+Flags: (0x[0-9a-f]+)`)
	statOwner = regexp.MustCompile(`User:\s+(-?\d+)\s+Group:\s+(-?\d+)\s+Project:\s+\d+\s+Size: (\d+)`)
	statLinks = regexp.MustCompile(`Links: (\d+)\s+Blockcount: (\d+)`)
	statTime  = regexp.MustCompile(`(?m)^\s*(ctime|atime|mtime|crtime): 0x([0-9a-f]{8}):([0-9a-f]{8})`)
	statDev   = regexp.MustCompile(`Device major/minor number: (\d+):(\d+)`)
	statFast  = regexp.MustCompile(`Fast link dest: "(.*)"`)
)

type statInfo struct {
	ino, mode, flags uint64
	uid, gid         uint64
	size             uint64
	links, sectors   uint64
	times            map[string]int64
	major, minor     int64
	fastLink         *string
	raw              string
}

// parseStat reads the fields of a debugfs `stat` output. Times are
// decoded from the raw hex (seconds, and the extra field whose two low
// bits extend the seconds beyond 32 bits).
func parseStat(t *testing.T, s string) statInfo {
	t.Helper()
	var st statInfo
	st.raw = s
	num := func(re *regexp.Regexp, base int, dst ...*uint64) {
		m := re.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("debugfs stat: no %v in:\n%s", re, s)
		}
		for i, d := range dst {
			// debugfs prints 32-bit ids as signed numbers.
			v, err := strconv.ParseInt(strings.TrimPrefix(m[i+1], "0x"), base, 64)
			if err != nil {
				t.Fatal(err)
			}
			*d = uint64(v)
			if v < 0 {
				*d = uint64(uint32(v))
			}
		}
	}
	num(statInode, 10, &st.ino)
	if m := statInode.FindStringSubmatch(s); m != nil {
		st.mode, _ = strconv.ParseUint(m[2], 8, 32)
		st.flags, _ = strconv.ParseUint(strings.TrimPrefix(m[3], "0x"), 16, 32)
	}
	num(statOwner, 10, &st.uid, &st.gid, &st.size)
	num(statLinks, 10, &st.links, &st.sectors)
	st.times = map[string]int64{}
	for _, m := range statTime.FindAllStringSubmatch(s, -1) {
		lo, _ := strconv.ParseUint(m[2], 16, 32)
		extra, _ := strconv.ParseUint(m[3], 16, 32)
		st.times[m[1]] = int64(int32(uint32(lo))) + int64(extra&3)<<32
	}
	st.major, st.minor = -1, -1
	if m := statDev.FindStringSubmatch(s); m != nil {
		st.major, _ = strconv.ParseInt(m[1], 10, 64)
		st.minor, _ = strconv.ParseInt(m[2], 10, 64)
	}
	if m := statFast.FindStringSubmatch(s); m != nil {
		st.fastLink = &m[1]
	}
	return st
}

// lsEntry is one line of debugfs `ls -p`: /ino/mode/uid/gid/name/size/.
type lsEntry struct {
	ino, mode, uid, gid uint64
	size                string
}

func parseLs(t *testing.T, s string) map[string]lsEntry {
	t.Helper()
	res := map[string]lsEntry{}
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "/")
		if len(f) != 8 {
			t.Fatalf("debugfs ls -p: unexpected line %q", l)
		}
		var e lsEntry
		e.ino, _ = strconv.ParseUint(f[1], 10, 32)
		e.mode, _ = strconv.ParseUint(f[2], 8, 32)
		uid, _ := strconv.ParseInt(f[3], 10, 64) // printed signed
		gid, _ := strconv.ParseInt(f[4], 10, 64)
		e.uid, e.gid = uint64(uint32(uid)), uint64(uint32(gid))
		e.size = f[6]
		res[f[5]] = e
	}
	return res
}

// checkWithDebugfs reads every node of root back with debugfs and compares
// type, mode, owner, size, times, link count, symlink target, device
// numbers, xattrs and content. Directories with more than maxStat entries
// are checked through `ls -p` only (names, inode, mode, owner, size).
func checkWithDebugfs(t *testing.T, img string, root *fstree.Node) {
	t.Helper()
	const maxStat = 100
	type check struct {
		path string
		n    *fstree.Node
		cmd  int // index of the stat command
	}
	var cmds []string
	var checks []check
	tmp := t.TempDir()
	dumps := map[string]string{}  // path -> dump file
	xattrs := map[string]string{} // path + "\x00" + name -> file
	linkCount := map[uint64]int{}
	walk(root, "/", func(path string, n *fstree.Node) {
		if n.LinkID != 0 && !n.Mode.IsDir() {
			linkCount[n.LinkID]++
		}
	})
	var visit func(path string, n *fstree.Node, stat bool)
	visit = func(path string, n *fstree.Node, stat bool) {
		if stat {
			checks = append(checks, check{path, n, len(cmds)})
			cmds = append(cmds, "stat "+quote(path))
			if n.Mode.IsRegular() || (n.Mode.Type() == fs.ModeSymlink && len(n.Target) > fastSymlinkMax) {
				f := filepath.Join(tmp, fmt.Sprintf("dump%d", len(dumps)))
				dumps[path] = f
				cmds = append(cmds, "dump "+quote(path)+" "+f)
			}
			names := make([]string, 0, len(n.Xattrs))
			for name := range n.Xattrs {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				f := filepath.Join(tmp, fmt.Sprintf("xattr%d", len(xattrs)))
				xattrs[path+"\x00"+name] = f
				cmds = append(cmds, "ea_get -f "+f+" "+quote(path)+" "+name)
			}
		}
		if n.Mode.IsDir() {
			checks = append(checks, check{path, n, -1 - len(cmds)})
			cmds = append(cmds, "ls -p "+quote(path))
			for _, c := range n.Children {
				visit(strings.TrimSuffix(path, "/")+"/"+c.Name, c, len(n.Children) <= maxStat)
			}
		}
	}
	visit("/", root, true)
	out := debugfs(t, img, cmds)

	inoOf := map[uint64]uint64{} // LinkID -> inode
	for _, c := range checks {
		n := c.n
		if c.cmd < 0 { // ls -p of a directory
			ls := parseLs(t, out[-1-c.cmd])
			want := len(n.Children) + 2
			if c.path == "/" && !hasChild(n.Children, "lost+found") {
				want++
			}
			if len(ls) != want {
				t.Errorf("%s: debugfs ls shows %d entries, want %d", c.path, len(ls), want)
			}
			for _, k := range n.Children {
				e, ok := ls[k.Name]
				if !ok {
					t.Errorf("%s: %s missing", c.path, k.Name)
					continue
				}
				if uint32(e.mode) != unixMode(k.Mode) || uint32(e.uid) != k.UID || uint32(e.gid) != k.GID {
					t.Errorf("%s/%s: ls -p mode %o uid %d gid %d, want %o %d %d", c.path, k.Name, e.mode, e.uid, e.gid, unixMode(k.Mode), k.UID, k.GID)
				}
				if k.Mode.IsRegular() && e.size != strconv.FormatInt(k.Size, 10) {
					t.Errorf("%s/%s: ls -p size %s, want %d", c.path, k.Name, e.size, k.Size)
				}
				if k.LinkID != 0 && !k.Mode.IsDir() {
					if ino, ok := inoOf[k.LinkID]; ok && ino != e.ino {
						t.Errorf("%s/%s: hardlink has inode %d, another name of it %d", c.path, k.Name, e.ino, ino)
					}
					inoOf[k.LinkID] = e.ino
				}
			}
			continue
		}
		st := parseStat(t, out[c.cmd])
		if uint32(st.mode) != unixMode(n.Mode)&0o7777 {
			t.Errorf("%s: mode %o, want %o", c.path, st.mode, unixMode(n.Mode)&0o7777)
		}
		if uint32(st.uid) != n.UID || uint32(st.gid) != n.GID {
			t.Errorf("%s: owner %d:%d, want %d:%d", c.path, st.uid, st.gid, n.UID, n.GID)
		}
		for _, name := range []string{"ctime", "atime", "mtime", "crtime"} {
			if got, ok := st.times[name]; !ok || got != n.ModTime {
				t.Errorf("%s: %s %d, want %d", c.path, name, got, n.ModTime)
			}
		}
		wantLinks := uint64(1)
		switch {
		case n.Mode.IsDir():
			wantLinks = 2
			for _, k := range n.Children {
				if k.Mode.IsDir() {
					wantLinks++
				}
			}
			if c.path == "/" && !hasChild(n.Children, "lost+found") {
				wantLinks++
			}
		case n.LinkID != 0:
			wantLinks = uint64(linkCount[n.LinkID])
		}
		if st.links != wantLinks {
			t.Errorf("%s: %d links, want %d", c.path, st.links, wantLinks)
		}
		switch n.Mode.Type() {
		case 0:
			if st.size != uint64(n.Size) {
				t.Errorf("%s: size %d, want %d", c.path, st.size, n.Size)
			}
			got, err := os.ReadFile(dumps[c.path])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, readAll(t, n)) {
				t.Errorf("%s: content differs (%d bytes read back, %d expected)", c.path, len(got), n.Size)
			}
			if st.flags&extentsFlag == 0 {
				t.Errorf("%s: no extents flag (flags %#x)", c.path, st.flags)
			}
		case fs.ModeSymlink:
			if st.size != uint64(len(n.Target)) {
				t.Errorf("%s: symlink size %d, want %d", c.path, st.size, len(n.Target))
			}
			if len(n.Target) <= fastSymlinkMax {
				xattrBlock := uint64(0)
				if !strings.Contains(st.raw, "File ACL: 0\n") {
					xattrBlock = sectorsPerBlk
				}
				if st.fastLink == nil || *st.fastLink != n.Target || st.sectors != xattrBlock {
					t.Errorf("%s: not a fast symlink to %q:\n%s", c.path, n.Target, st.raw)
				}
			} else {
				got, err := os.ReadFile(dumps[c.path])
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != n.Target || st.flags&extentsFlag == 0 {
					t.Errorf("%s: slow symlink reads %q (flags %#x), want %q", c.path, got, st.flags, n.Target)
				}
			}
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			if st.major != int64(n.DevMajor) || st.minor != int64(n.DevMinor) {
				t.Errorf("%s: device %d:%d, want %d:%d", c.path, st.major, st.minor, n.DevMajor, n.DevMinor)
			}
		}
		for name, want := range n.Xattrs {
			got, err := os.ReadFile(xattrs[c.path+"\x00"+name])
			if err != nil {
				t.Fatalf("%s: xattr %s not read back: %v", c.path, name, err)
			}
			if name == aclAccessName || name == aclDefaultName {
				got, want = normalizeACL(got), normalizeACL(want)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: xattr %s = %x, want %x", c.path, name, got, want)
			}
		}
		if got := statXattrCount(st.raw); got != len(n.Xattrs) {
			t.Errorf("%s: debugfs lists %d xattrs, want %d:\n%s", c.path, got, len(n.Xattrs), st.raw)
		}
	}
}

func quote(p string) string {
	if strings.ContainsAny(p, " \t\"") {
		return strconv.Quote(p)
	}
	return p
}

// statXattrCount counts the attributes listed by debugfs `stat` (one
// indented line each under "Extended attributes:").
func statXattrCount(s string) int {
	_, list, ok := strings.Cut(s, "Extended attributes:\n")
	if !ok {
		return 0
	}
	n := 0
	for _, l := range strings.Split(list, "\n") {
		if !strings.HasPrefix(l, "  ") {
			break
		}
		n++
	}
	return n
}

// normalizeACL zeroes the ids of an ACL's owner, owning group, mask and
// other entries: libext2fs returns them as 0 where the kernel returns -1,
// and neither is stored on disk.
func normalizeACL(v []byte) []byte {
	v = append([]byte(nil), v...)
	for e := v[4:]; len(e) >= 8; e = e[8:] {
		if tag := binary.LittleEndian.Uint16(e); tag != aclUser && tag != aclGroup {
			binary.LittleEndian.PutUint32(e[4:], 0)
		}
	}
	return v
}
