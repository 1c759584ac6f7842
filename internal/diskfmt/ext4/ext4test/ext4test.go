// Package ext4test judges ext4 file systems with the reference tools, as
// go-containerregistry's validate judges images: Fsck has e2fsck check an
// image from every superblock, Verify reads every entry back with debugfs
// and compares it with the tree written, VerifyDir compares a kernel mount
// with it (fstree.Diff). Debugfs and ParseStat are the reading underneath,
// for checks of their own. It does not use the writer's code: it judges
// the format for the writer's tests and for those of the packages writing
// file systems.
//
// An image path may carry e2fsprogs' "?offset=<bytes>" suffix: a file
// system inside a disk image.
package ext4test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/kairos-io/kairos/internal/fstree"
)

// The format's constants the checks rely on.
const (
	extentsFlag    = 0x80000 // EXT4_EXTENTS_FL
	fastSymlinkMax = 59      // a target this long or shorter is in the inode
	aclAccess      = "system.posix_acl_access"
	aclDefault     = "system.posix_acl_default"
	aclUser        = 2 // ACL_USER: an entry with an id of its own
	aclGroup       = 8 // ACL_GROUP
)

// run runs a tool in the C locale and UTC and returns its standard output;
// a failure includes what it printed.
func run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

var (
	fsckLine     = regexp.MustCompile(`^(e2fsck [0-9.]+ \(.*\)|Pass [1-5]: Checking .*|.*: [0-9]+/[0-9]+ files \([0-9.]+% non-contiguous\), [0-9]+/[0-9]+ blocks)$`)
	backupSuper  = regexp.MustCompile(`(?m)^\s*Backup superblock at (\d+),`)
	blockSizeRow = regexp.MustCompile(`(?m)^Block size:\s+(\d+)$`)
)

// Fsck runs `e2fsck -fn` (a forced full check, answering no to every fix)
// and requires that it exits 0 and prints nothing but its pass headers and
// summary; then again from every backup superblock and group descriptor
// table (as dumpe2fs lists them), as e2fsck would use them to repair a
// damaged primary, with the same summary. A file system mke2fs made, or
// the kernel wrote to, may fail the second part (mke2fs leaves the
// backups' counters unset, the kernel updates the primary superblock and
// descriptors only): FsckPrimary is the first part.
func Fsck(img string) error {
	summary, err := fsck(img)
	if err != nil {
		return err
	}
	out, err := run("dumpe2fs", img)
	if err != nil {
		return err
	}
	m := blockSizeRow.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("dumpe2fs %s: no block size in:\n%s", img, out)
	}
	for _, b := range backupSuper.FindAllStringSubmatch(out, -1) {
		s, err := fsck(img, "-b", b[1], "-B", m[1])
		if err != nil {
			return err
		}
		if s != summary {
			return fmt.Errorf("e2fsck %s from the backup superblock at block %s: %s, from the primary: %s", img, b[1], s, summary)
		}
	}
	return nil
}

// FsckPrimary is Fsck from the primary superblock only: for file systems
// mke2fs made or the kernel wrote to.
func FsckPrimary(img string) error {
	_, err := fsck(img)
	return err
}

func fsck(img string, args ...string) (string, error) {
	args = append([]string{"-fn"}, append(args, img)...)
	out, err := exec.Command("e2fsck", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("e2fsck %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var summary string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !fsckLine.MatchString(l) {
			return "", fmt.Errorf("e2fsck %s reports %q:\n%s", strings.Join(args, " "), l, out)
		}
		if strings.Contains(l, "files (") {
			summary = l
		}
	}
	if summary == "" {
		return "", fmt.Errorf("e2fsck %s printed no summary:\n%s", strings.Join(args, " "), out)
	}
	return summary, nil
}

// Debugfs runs commands in one debugfs session on img and returns each
// one's output. Any message on stderr besides the version banner (debugfs
// reports errors there, e.g. a path not found) is an error.
func Debugfs(img string, cmds ...string) ([]string, error) {
	dir, err := os.MkdirTemp("", "ext4test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	return debugfs(img, dir, cmds)
}

func debugfs(img, tmp string, cmds []string) ([]string, error) {
	script := filepath.Join(tmp, "debugfs.cmds")
	if err := os.WriteFile(script, []byte(strings.Join(cmds, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("debugfs", "-f", script, img)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("debugfs %s: %v\n%s", img, err, errb.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		if !strings.HasPrefix(l, "debugfs ") {
			return nil, fmt.Errorf("debugfs %s reports: %s", img, errb.String())
		}
	}
	var res []string
	for _, part := range strings.Split(out.String(), "debugfs: ")[1:] {
		_, body, _ := strings.Cut(part, "\n") // the echoed command
		res = append(res, body)
	}
	if len(res) != len(cmds) {
		return nil, fmt.Errorf("debugfs %s: %d outputs for %d commands:\n%s", img, len(res), len(cmds), out.String())
	}
	return res, nil
}

// ReadFile reads the regular file at p (symlinks are not followed) out of
// the file system img with debugfs.
func ReadFile(img, p string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "ext4test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	dst := filepath.Join(dir, "file")
	if err := Dump(img, p, dst); err != nil {
		return nil, err
	}
	return os.ReadFile(dst)
}

// Dump copies the regular file at p (symlinks are not followed) out of the
// file system img to the file dst with debugfs: for files too large to
// read into memory.
func Dump(img, p, dst string) error {
	out, err := Debugfs(img, "stat "+quote(p))
	if err != nil {
		return err
	}
	if st, err := ParseStat(out[0]); err != nil {
		return err
	} else if st.Type != "regular" {
		return fmt.Errorf("%s: %s is a %s, not a regular file", img, p, st.Type)
	}
	_, err = Debugfs(img, "dump "+quote(p)+" "+quote(dst))
	return err
}

func quote(p string) string {
	if strings.ContainsAny(p, " \t\"") {
		return strconv.Quote(p)
	}
	return p
}

// Inode is what debugfs `stat` shows of an inode.
type Inode struct {
	Ino        uint64
	Type       string // "regular", "directory", "symlink", ...
	Mode       uint64 // permission, setuid, setgid and sticky bits
	Flags      uint64
	UID, GID   uint64
	Size       uint64
	Links      uint64
	Sectors    uint64 // Blockcount: 512-byte sectors
	Times      map[string]int64
	Major      int64 // device numbers; -1 when not a device
	Minor      int64
	FastLink   *string // a symlink target stored in the inode
	XattrBlock bool    // File ACL: the inode has an attribute block
	Xattrs     int     // the attributes listed
	Raw        string  // the whole output
}

var (
	statInode = regexp.MustCompile(`Inode: (\d+)\s+Type: ([A-Za-z ]+?)\s+Mode:\s+(\d+)\s+Flags: 0x([0-9a-f]+)`)
	statOwner = regexp.MustCompile(`User:\s+(-?\d+)\s+Group:\s+(-?\d+)\s+Project:\s+\d+\s+Size: (\d+)`)
	statLinks = regexp.MustCompile(`Links: (\d+)\s+Blockcount: (\d+)`)
	statTime  = regexp.MustCompile(`(?m)^\s*(ctime|atime|mtime|crtime): 0x([0-9a-f]{8}):([0-9a-f]{8})`)
	statDev   = regexp.MustCompile(`Device major/minor number: (\d+):(\d+)`)
	statFast  = regexp.MustCompile(`Fast link dest: "(.*)"`)
)

// ParseStat reads the output of a debugfs `stat`. Times are decoded from
// the raw hex (seconds, and the extra field whose two low bits extend them
// beyond 32 bits); ids printed as negative numbers are the unsigned 32-bit
// ones.
func ParseStat(s string) (Inode, error) {
	st := Inode{Raw: s, Times: map[string]int64{}, Major: -1, Minor: -1}
	nums := func(re *regexp.Regexp, base int, dst ...*uint64) error {
		m := re.FindStringSubmatch(s)
		if m == nil {
			return fmt.Errorf("debugfs stat: no %v in:\n%s", re, s)
		}
		for i, d := range dst {
			if d == nil {
				continue
			}
			v, err := strconv.ParseInt(m[i+1], base, 64)
			if err != nil {
				return fmt.Errorf("debugfs stat: %w", err)
			}
			*d = uint64(v)
			if v < 0 {
				*d = uint64(uint32(v))
			}
		}
		return nil
	}
	for _, err := range []error{
		nums(statInode, 10, &st.Ino),
		nums(statOwner, 10, &st.UID, &st.GID, &st.Size),
		nums(statLinks, 10, &st.Links, &st.Sectors),
	} {
		if err != nil {
			return st, err
		}
	}
	m := statInode.FindStringSubmatch(s)
	st.Type = m[2]
	st.Mode, _ = strconv.ParseUint(m[3], 8, 32)
	st.Flags, _ = strconv.ParseUint(m[4], 16, 32)
	for _, m := range statTime.FindAllStringSubmatch(s, -1) {
		lo, _ := strconv.ParseUint(m[2], 16, 32)
		extra, _ := strconv.ParseUint(m[3], 16, 32)
		st.Times[m[1]] = int64(int32(uint32(lo))) + int64(extra&3)<<32
	}
	if m := statDev.FindStringSubmatch(s); m != nil {
		st.Major, _ = strconv.ParseInt(m[1], 10, 64)
		st.Minor, _ = strconv.ParseInt(m[2], 10, 64)
	}
	if m := statFast.FindStringSubmatch(s); m != nil {
		st.FastLink = &m[1]
	}
	st.XattrBlock = !strings.Contains(s, "File ACL: 0\n")
	if _, list, ok := strings.Cut(s, "Extended attributes:\n"); ok {
		for _, l := range strings.Split(list, "\n") {
			if !strings.HasPrefix(l, "  ") {
				break
			}
			st.Xattrs++
		}
	}
	return st, nil
}

// dirEntry is one line of debugfs `ls -p`: /ino/mode/uid/gid/name/size/.
type dirEntry struct {
	ino, mode, uid, gid uint64
	size                string
}

func parseLs(s string) (map[string]dirEntry, error) {
	res := map[string]dirEntry{}
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "/")
		if len(f) != 8 {
			return nil, fmt.Errorf("debugfs ls -p: unexpected line %q", l)
		}
		var e dirEntry
		e.ino, _ = strconv.ParseUint(f[1], 10, 32)
		e.mode, _ = strconv.ParseUint(f[2], 8, 32)
		uid, _ := strconv.ParseInt(f[3], 10, 64) // printed signed
		gid, _ := strconv.ParseInt(f[4], 10, 64)
		e.uid, e.gid = uint64(uint32(uid)), uint64(uint32(gid))
		e.size = f[6]
		res[f[5]] = e
	}
	return res, nil
}

// Verify checks the file system img with Fsck, then reads every node of
// want back with debugfs and compares its type, mode, owner, size, every
// time (ext4 writers stamp ctime, atime and crtime with the mtime), link
// count, symlink target (fast in the inode, or in an extent-mapped block),
// device numbers, xattrs (all of them, nothing more) and content, and that
// files use extents. Directories with more than 100 entries are checked
// through `ls -p` only (names, inode, mode, owner, size). The root may
// have a lost+found want lacks.
func Verify(img string, want *fstree.Node) error {
	if err := Fsck(img); err != nil {
		return err
	}
	return verifyDebugfs(img, want)
}

func verifyDebugfs(img string, root *fstree.Node) error {
	const maxStat = 100
	type check struct {
		path string
		n    *fstree.Node
		cmd  int // index of the stat command; -1-index of a directory's ls -p
	}
	tmp, err := os.MkdirTemp("", "ext4test-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmds := []string{"stats -h"}
	var checks []check
	dumps := map[string]string{}  // path -> dump file
	xattrs := map[string]string{} // path + "\x00" + name -> file
	linkCount := map[uint64]uint64{}
	var visit func(path string, n *fstree.Node, stat bool)
	visit = func(path string, n *fstree.Node, stat bool) {
		if n.LinkID != 0 && !n.Mode.IsDir() {
			linkCount[n.LinkID]++
		}
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
	out, err := debugfs(img, tmp, cmds)
	if err != nil {
		return err
	}
	m := blockSizeRow.FindStringSubmatch(out[0])
	if m == nil {
		return fmt.Errorf("debugfs stats: no block size in:\n%s", out[0])
	}
	blockSize, _ := strconv.ParseUint(m[1], 10, 32)

	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	withLostFound := root.Child("lost+found") == nil // the writer adds one
	inoOf := map[uint64]uint64{}                     // LinkID -> inode
	for _, c := range checks {
		n := c.n
		if c.cmd < 0 { // ls -p of a directory
			ls, err := parseLs(out[-1-c.cmd])
			if err != nil {
				return err
			}
			want := len(n.Children) + 2
			if c.path == "/" && withLostFound {
				want++
			}
			if len(ls) != want {
				bad("%s: debugfs ls shows %d entries, want %d", c.path, len(ls), want)
			}
			for _, k := range n.Children {
				e, ok := ls[k.Name]
				if !ok {
					bad("%s: %s missing", c.path, k.Name)
					continue
				}
				if uint32(e.mode) != unixMode(k.Mode) || uint32(e.uid) != k.UID || uint32(e.gid) != k.GID {
					bad("%s/%s: ls -p mode %o uid %d gid %d, want %o %d %d", c.path, k.Name, e.mode, e.uid, e.gid, unixMode(k.Mode), k.UID, k.GID)
				}
				if k.Mode.IsRegular() && e.size != strconv.FormatInt(k.Size, 10) {
					bad("%s/%s: ls -p size %s, want %d", c.path, k.Name, e.size, k.Size)
				}
				if k.LinkID != 0 && !k.Mode.IsDir() {
					if ino, ok := inoOf[k.LinkID]; ok && ino != e.ino {
						bad("%s/%s: hardlink has inode %d, another name of it %d", c.path, k.Name, e.ino, ino)
					}
					inoOf[k.LinkID] = e.ino
				}
			}
			continue
		}
		st, err := ParseStat(out[c.cmd])
		if err != nil {
			return err
		}
		if uint32(st.Mode) != unixMode(n.Mode)&0o7777 {
			bad("%s: mode %o, want %o", c.path, st.Mode, unixMode(n.Mode)&0o7777)
		}
		if uint32(st.UID) != n.UID || uint32(st.GID) != n.GID {
			bad("%s: owner %d:%d, want %d:%d", c.path, st.UID, st.GID, n.UID, n.GID)
		}
		for _, name := range []string{"ctime", "atime", "mtime", "crtime"} {
			if got, ok := st.Times[name]; !ok || got != n.ModTime {
				bad("%s: %s %d, want %d", c.path, name, got, n.ModTime)
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
			if c.path == "/" && withLostFound {
				wantLinks++
			}
		case n.LinkID != 0:
			wantLinks = linkCount[n.LinkID]
		}
		if st.Links != wantLinks {
			bad("%s: %d links, want %d", c.path, st.Links, wantLinks)
		}
		switch n.Mode.Type() {
		case 0:
			if st.Size != uint64(n.Size) {
				bad("%s: size %d, want %d", c.path, st.Size, n.Size)
			}
			got, err := os.ReadFile(dumps[c.path])
			if err != nil {
				return err
			}
			want, err := fstree.Content(n)
			if err != nil {
				return fmt.Errorf("%s: %w", c.path, err)
			}
			if !bytes.Equal(got, want) {
				bad("%s: content differs (%d bytes read back, %d expected)", c.path, len(got), n.Size)
			}
			if st.Flags&extentsFlag == 0 {
				bad("%s: no extents flag (flags %#x)", c.path, st.Flags)
			}
		case fs.ModeSymlink:
			if st.Size != uint64(len(n.Target)) {
				bad("%s: symlink size %d, want %d", c.path, st.Size, len(n.Target))
			}
			if len(n.Target) <= fastSymlinkMax {
				xattrBlock := uint64(0)
				if st.XattrBlock {
					xattrBlock = blockSize / 512
				}
				if st.FastLink == nil || *st.FastLink != n.Target || st.Sectors != xattrBlock {
					bad("%s: not a fast symlink to %q:\n%s", c.path, n.Target, st.Raw)
				}
			} else {
				got, err := os.ReadFile(dumps[c.path])
				if err != nil {
					return err
				}
				if string(got) != n.Target || st.Flags&extentsFlag == 0 {
					bad("%s: slow symlink reads %q (flags %#x), want %q", c.path, got, st.Flags, n.Target)
				}
			}
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			if st.Major != int64(n.DevMajor) || st.Minor != int64(n.DevMinor) {
				bad("%s: device %d:%d, want %d:%d", c.path, st.Major, st.Minor, n.DevMajor, n.DevMinor)
			}
		}
		for name, want := range n.Xattrs {
			got, err := os.ReadFile(xattrs[c.path+"\x00"+name])
			if err != nil {
				return fmt.Errorf("%s: xattr %s not read back: %w", c.path, name, err)
			}
			if name == aclAccess || name == aclDefault {
				got, want = normalizeACL(got), normalizeACL(want)
			}
			if !bytes.Equal(got, want) {
				bad("%s: xattr %s = %x, want %x", c.path, name, got, want)
			}
		}
		if st.Xattrs != len(n.Xattrs) {
			bad("%s: debugfs lists %d xattrs, want %d:\n%s", c.path, st.Xattrs, len(n.Xattrs), st.Raw)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("debugfs of %s differs from the tree written:\n%s", img, strings.Join(errs, "\n"))
	}
	return nil
}

// VerifyDir compares dir, a kernel mount of an ext4 file system, read with
// fstree.DirSource, with want: every entry's type, mode, owner, mtime,
// size, content, symlink target, device numbers, xattrs, and which names
// are hardlinks of each other. When want has no lost+found, the root may
// hold the one an ext4 writer adds: an empty directory of mode 0700.
func VerifyDir(dir string, want *fstree.Node) error {
	got, err := fstree.DirSource(dir)
	if err != nil {
		return err
	}
	if want.Child("lost+found") == nil {
		if lf := got.Child("lost+found"); lf != nil {
			if !lf.Mode.IsDir() || lf.Mode.Perm() != 0o700 || len(lf.Children) != 0 {
				return fmt.Errorf("%s/lost+found: mode %v with %d entries", dir, lf.Mode, len(lf.Children))
			}
			var kept []*fstree.Node
			for _, c := range got.Children {
				if c != lf {
					kept = append(kept, c)
				}
			}
			got.Children = kept
		}
	}
	if err := fstree.Compare(want, got, fstree.DiffOptions{}); err != nil {
		return fmt.Errorf("%s differs from the tree written:\n%w", dir, err)
	}
	return nil
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
	for bit, m2 := range map[uint32]fs.FileMode{0o4000: fs.ModeSetuid, 0o2000: fs.ModeSetgid, 0o1000: fs.ModeSticky} {
		if m&m2 != 0 {
			mode |= bit
		}
	}
	return mode
}

// normalizeACL zeroes the ids of an ACL's owner, owning group, mask and
// other entries: libext2fs returns them as 0 where the kernel returns -1,
// and neither is stored on disk.
func normalizeACL(v []byte) []byte {
	if len(v) < 4 {
		return v
	}
	v = append([]byte(nil), v...)
	for e := v[4:]; len(e) >= 8; e = e[8:] {
		if tag := binary.LittleEndian.Uint16(e); tag != aclUser && tag != aclGroup {
			binary.LittleEndian.PutUint32(e[4:], 0)
		}
	}
	return v
}
