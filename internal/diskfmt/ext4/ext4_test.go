package ext4

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/diskfmt/ext4/ext4test"
	"github.com/kairos-io/kairos/internal/fstree"
)

func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// capNetRaw is a VFS_CAP_REVISION_2 security.capability value granting
// cap_net_raw=ep, as /usr/bin/ping carries.
var capNetRaw = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// posixACL encodes an ACL in the getxattr format (version 2, 8-byte
// entries; ids of the owner/group/mask/other entries are -1, as the
// kernel returns them).
func posixACL(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

const none = 0xFFFFFFFF

func file(name string, mode fs.FileMode, data []byte) *fstree.Node {
	return &fstree.Node{Name: name, Mode: mode, Size: int64(len(data)), Open: fstree.BytesOpener(data), ModTime: 1600000000}
}

func dir(name string, mode fs.FileMode, children ...*fstree.Node) *fstree.Node {
	return &fstree.Node{Name: name, Mode: fs.ModeDir | mode, Children: children, ModTime: 1600000001}
}

func symlink(name, target string) *fstree.Node {
	return &fstree.Node{Name: name, Mode: fs.ModeSymlink | 0o777, Target: target, ModTime: 1600000002}
}

func with(n *fstree.Node, f func(n *fstree.Node)) *fstree.Node { f(n); return n }

// testTree has every kind of entry and every corner the writer handles.
func testTree() *fstree.Node {
	many := make([]*fstree.Node, 5000)
	for i := range many {
		var data []byte
		if i%500 == 0 {
			data = randomBytes(uint64(i), 100+i)
		}
		many[i] = with(file(fmt.Sprintf("entry-with-a-longer-name-%05d", i), 0o640, data), func(n *fstree.Node) {
			n.UID, n.GID = uint32(i), uint32(5000-i)
		})
	}
	mixed := append(append(make([]byte, blockSize), randomBytes(3, 5000)...), make([]byte, 2*blockSize)...)
	hl := func(name string, id uint64) *fstree.Node {
		return with(file(name, 0o644, []byte("shared content\n")), func(n *fstree.Node) { n.LinkID = id })
	}
	dev := func(name string, mode fs.FileMode, major, minor uint32) *fstree.Node {
		return &fstree.Node{Name: name, Mode: mode | 0o660, DevMajor: major, DevMinor: minor, GID: 6, ModTime: 1600000003}
	}
	return &fstree.Node{Mode: fs.ModeDir | 0o755, ModTime: sourceDateEpoch.Unix(), Children: []*fstree.Node{
		dir("bin", 0o755,
			with(file("ping", 0o755, randomBytes(1, 70000)), func(n *fstree.Node) {
				n.Xattrs = map[string][]byte{"security.capability": capNetRaw}
			}),
			with(file("su", fs.ModeSetuid|0o755, []byte("#!/bin/false\n")), func(n *fstree.Node) {}),
			with(file("wall", fs.ModeSetgid|0o755, []byte("wall")), func(n *fstree.Node) { n.GID = 5 }),
			symlink("sh", "bash"),
		),
		dir("dev", 0o755,
			dev("null", fs.ModeDevice|fs.ModeCharDevice, 1, 3),
			dev("sda", fs.ModeDevice, 8, 0),
			dev("big", fs.ModeDevice|fs.ModeCharDevice, 300, 70000),
			dev("nvme", fs.ModeDevice, 259, 1),
			dev("minor", fs.ModeDevice, 8, 300),
		),
		dir("run", 0o755,
			&fstree.Node{Name: "fifo", Mode: fs.ModeNamedPipe | 0o600, ModTime: 1600000004},
			&fstree.Node{Name: "sock", Mode: fs.ModeSocket | 0o777, ModTime: 1600000005},
		),
		dir("tmp", fs.ModeSticky|0o777),
		dir("etc", 0o755,
			file("hosts", 0o644, []byte("127.0.0.1 localhost\n")),
			symlink("hosts-link", "hosts"),
			file("empty", 0o644, nil),
			file("zeros", 0o644, make([]byte, 3*blockSize+100)),
			file("mixed", 0o600, mixed),
			file("naïve file.txt", 0o644, []byte("utf-8 name")),
			file(strings.Repeat("n", maxNameLen), 0o644, []byte("longest name")),
		),
		dir("data", 0o755, file("random", 0o644, randomBytes(2, 1<<20+123))),
		dir("hl", 0o755, hl("a", 7), hl("b", 7),
			with(symlink("s1", "a"), func(n *fstree.Node) { n.LinkID = 9 }),
			with(symlink("s2", "a"), func(n *fstree.Node) { n.LinkID = 9 }),
		),
		dir("other", 0o755, hl("c", 7)),
		with(dir("home", 0o755, with(dir("user", 0o700,
			with(file("big-ids", 0o600, []byte("x")), func(n *fstree.Node) { n.UID, n.GID = 4000000000, 65536 }),
		), func(n *fstree.Node) { n.UID, n.GID = 100000, 200000 })), func(n *fstree.Node) {}),
		dir("links", 0o755,
			symlink("fast59", strings.Repeat("f", fastSymlinkMax)),
			symlink("slow60", strings.Repeat("s", fastSymlinkMax+1)),
			symlink("longest", strings.Repeat("l/", (blockSize-1)/2)+"x"),
			symlink("slow-dir", strings.Repeat("./", 40)+"../data"),
		),
		dir("times", 0o755,
			with(file("pre-1970", 0o644, []byte("old")), func(n *fstree.Node) { n.ModTime = -1000000 }),
			with(file("y2038", 0o644, []byte("edge")), func(n *fstree.Node) { n.ModTime = 1 << 31 }),
			with(file("y2128", 0o644, []byte("future")), func(n *fstree.Node) { n.ModTime = 5000000000 }),
		),
		dir("xattr", 0o755,
			with(file("in-inode", 0o644, []byte("i")), func(n *fstree.Node) {
				n.Xattrs = map[string][]byte{"user.a": []byte("1"), "user.é": []byte("8-bit name"), "security.capability": capNetRaw}
			}),
			with(file("empty-value", 0o644, nil), func(n *fstree.Node) {
				n.Xattrs = map[string][]byte{"user.empty": {}}
			}),
			with(file("block", 0o644, []byte("b")), func(n *fstree.Node) {
				n.Xattrs = map[string][]byte{
					"user.big":               randomBytes(4, 2000),
					"user.small":             []byte("s"),
					"trusted.overlay.opaque": []byte("y"),
					"security.selinux":       []byte("system_u:object_r:bin_t:s0\x00"),
				}
			}),
			with(symlink("link", "in-inode"), func(n *fstree.Node) {
				n.Xattrs = map[string][]byte{"trusted.link": []byte("on a symlink")}
			}),
			// The VFS hides user.* on symlinks and devices: trusted.*.
			with(symlink("fast-link-block", "block"), func(n *fstree.Node) {
				n.Xattrs = map[string][]byte{"trusted.big": randomBytes(8, 1000)}
			}),
			with(&fstree.Node{Name: "dev-block", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, DevMajor: 10, DevMinor: 200}, func(n *fstree.Node) {
				n.Xattrs = map[string][]byte{"security.selinux": bytes.Repeat([]byte("s"), 200)}
			}),
			with(dir("acl", 0o750), func(n *fstree.Node) {
				n.Xattrs = map[string][]byte{
					"system.posix_acl_access": posixACL([3]uint32{aclUserObj, 7, none}, [3]uint32{aclUser, 5, 1000},
						[3]uint32{aclGroupObj, 5, none}, [3]uint32{aclGroup, 4, 2000}, [3]uint32{aclMask, 5, none}, [3]uint32{aclOther, 0, none}),
					"system.posix_acl_default": posixACL([3]uint32{aclUserObj, 7, none}, [3]uint32{aclGroupObj, 5, none},
						[3]uint32{aclOther, 0, none}),
				}
			}),
		),
		dir("many", 0o755, many...),
		dir("a", 0o755, dir("b", 0o755, dir("c", 0o755, dir("d", 0o755, dir("e", 0o755, file("deep", 0o644, []byte("deep\n"))))))),
	}}
}

// TestTree writes a tree with every node type and reads it back with
// e2fsck, debugfs, GRUB and the kernel.
func TestTree(t *testing.T) {
	needTools(t, "e2fsck", "debugfs", "grub-fstest")
	root := testTree()
	var calls int
	var last [2]int64
	img, st := writeImage(t, root, Options{Label: "COS_ACTIVE", ModTime: sourceDateEpoch, Headroom: 1 << 20,
		Progress: func(done, total int64) { calls++; last = [2]int64{done, total} }})
	if err := ext4test.Verify(img, root); err != nil {
		t.Error(err)
	}
	checkXattrBlockHash(t, img, "/xattr/block")

	var content int64
	walk(root, "/", func(_ string, n *fstree.Node) {
		if n.Mode.IsRegular() && (n.LinkID == 0 || n.Name != "b" && n.Name != "c") {
			content += n.Size
		}
	})
	if calls == 0 || last != [2]int64{content, content} {
		t.Errorf("progress: %d calls, last %v, want total %d", calls, last, content)
	}
	files := 0
	walk(root, "/", func(_ string, n *fstree.Node) { files++ })
	files -= 3 // hl/b, other/c and hl/s2 are names of earlier inodes
	files++    // lost+found
	if st.Files != files || st.BlockSize != blockSize || st.Size != int64(st.Blocks)*blockSize {
		t.Errorf("stats %+v: want %d files", st, files)
	}
	if req, err := RequiredSize(root, Options{Label: "COS_ACTIVE"}); err != nil || st.Size != req+1<<20 {
		t.Errorf("size %d, want RequiredSize %d + 1 MiB headroom (%v)", st.Size, req, err)
	}
	if fi, err := os.Stat(img); err != nil || fi.Size() != st.Size {
		t.Errorf("image size %v (%v), want %d", fi.Size(), err, st.Size)
	}

	// GRUB 2's ext2 driver: directory listing (a linear directory of
	// thousands of entries over many blocks), files, symlinks (fast and
	// slow, to a file and through a directory).
	ls := strings.Fields(run(t, "grub-fstest", img, "ls", "/"))
	for _, want := range []string{"bin/", "dev/", "etc/", "many/", "lost+found/", "xattr/"} {
		if !contains(ls, want) {
			t.Errorf("grub-fstest ls /: %q missing from %q", want, ls)
		}
	}
	if n := len(strings.Fields(run(t, "grub-fstest", img, "ls", "/many"))); n != 5000 {
		t.Errorf("grub-fstest ls /many: %d entries, want 5000", n)
	}
	for path, want := range map[string][]byte{
		"/data/random":           randomBytesOf(root, "data", "random"),
		"/etc/hosts-link":        []byte("127.0.0.1 localhost\n"),
		"/links/slow-dir/random": randomBytesOf(root, "data", "random"),
		"/etc/mixed":             randomBytesOf(root, "etc", "mixed"),
		"/a/b/c/d/e/deep":        []byte("deep\n"),
	} {
		if got := run(t, "grub-fstest", img, "cat", path); got != string(want) {
			t.Errorf("grub-fstest cat %s: %d bytes, want %d", path, len(got), len(want))
		}
	}

	checkWithKernel(t, img, root)
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func randomBytesOf(root *fstree.Node, path ...string) []byte {
	n := root
	for _, p := range path {
		for _, c := range n.Children {
			if c.Name == p {
				n = c
				break
			}
		}
	}
	rc, _ := n.Open()
	b, _ := io.ReadAll(rc)
	return b
}

// TestDirSource round-trips directories on disk: one made with every
// entry type (as root: device nodes, owners, security.* xattrs), and the
// breadth of /usr/share/doc.
func TestDirSource(t *testing.T) {
	needTools(t, "e2fsck", "debugfs")
	requireRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "usr/bin"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "etc/ssl"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "var/empty"), 0o700))
	must(os.WriteFile(filepath.Join(src, "usr/bin/ping"), randomBytes(5, 80000), 0o755))
	must(os.WriteFile(filepath.Join(src, "etc/os-release"), []byte("NAME=Kairos\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "etc/ssl/big"), randomBytes(6, 3<<20+5), 0o644))
	must(os.Link(filepath.Join(src, "etc/os-release"), filepath.Join(src, "usr/os-release")))
	must(os.Symlink("../usr/os-release", filepath.Join(src, "etc/link")))
	must(os.Symlink(strings.Repeat("long/", 30), filepath.Join(src, "etc/dangling")))
	must(os.Chown(filepath.Join(src, "var/empty"), 70000, 80000))
	must(unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(src, "loop0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	must(unix.Setxattr(filepath.Join(src, "usr/bin/ping"), "security.capability", capNetRaw, 0))
	must(unix.Setxattr(filepath.Join(src, "etc/os-release"), "user.comment", bytes.Repeat([]byte("x"), 1500), 0))
	must(unix.Setxattr(filepath.Join(src, "var/empty"), "trusted.overlay.opaque", []byte("y"), 0))
	must(os.Chmod(filepath.Join(src, "usr/bin/ping"), 0o4755))

	for _, dir := range []string{src, "/usr/share/doc"} {
		t.Run(strings.ReplaceAll(dir, "/", "_"), func(t *testing.T) {
			if _, err := os.Stat(dir); err != nil {
				t.Fatalf("%s: %v", dir, err)
			}
			root, err := fstree.DirSource(dir)
			if err != nil {
				t.Fatal(err)
			}
			img, _ := writeImage(t, root, Options{Label: "COS_OEM", ModTime: sourceDateEpoch, Journal: true})
			fsck(t, img)
			if dir == src {
				if err := ext4test.Verify(img, root); err != nil {
					t.Error(err)
				}
			}
			checkWithKernel(t, img, root)
		})
	}
}

// TestDeterministic writes the same tree twice, and once more at an offset
// of a larger file as in a disk image: the bytes are the same.
func TestDeterministic(t *testing.T) {
	opt := Options{Label: "COS_STATE", ModTime: sourceDateEpoch, Journal: true, Headroom: 8 << 20}
	a, _ := writeImage(t, testTree(), opt)
	b, _ := writeImage(t, testTree(), opt)
	ha, hb := sha256File(t, a, 0, -1), sha256File(t, b, 0, -1)
	if ha != hb {
		t.Fatalf("two writes differ: %x, %x", ha, hb)
	}

	size, err := RequiredSize(testTree(), opt)
	if err != nil {
		t.Fatal(err)
	}
	size += opt.Headroom
	disk := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	const offset = 1 << 20
	if err := f.Truncate(offset + size + offset); err != nil {
		t.Fatal(err)
	}
	opt.Size = size
	if _, err := Write(io.NewOffsetWriter(f, offset), testTree(), opt); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if hc := sha256File(t, disk, offset, size); hc != ha {
		t.Fatalf("file system inside a disk image differs from the standalone one")
	}
}

func sha256File(t *testing.T, path string, off, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = io.NewSectionReader(f, off, 1<<62)
	if n >= 0 {
		r = io.LimitReader(r, n)
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// failWriter fails the test on any write.
type failWriter struct{ t *testing.T }

func (w failWriter) WriteAt(p []byte, off int64) (int, error) {
	w.t.Errorf("write of %d bytes at %d", len(p), off)
	return len(p), nil
}

// TestTooSmall: a size below RequiredSize fails before writing anything,
// naming both sizes; RequiredSize itself fits exactly.
func TestTooSmall(t *testing.T) {
	needTools(t, "e2fsck")
	root := testTree()
	for _, journal := range []bool{false, true} {
		opt := Options{Label: "SMALL", Journal: journal}
		req, err := RequiredSize(root, opt)
		if err != nil {
			t.Fatal(err)
		}
		opt.Size = req - blockSize
		_, err = Write(failWriter{t}, root, opt)
		if err == nil {
			t.Fatalf("size %d below RequiredSize %d accepted", opt.Size, req)
		}
		for _, want := range []string{fmt.Sprintf("%.2f MiB", mib(uint64(opt.Size))), fmt.Sprintf("%.2f MiB", mib(uint64(req)))} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %s", err, want)
			}
		}
		path := filepath.Join(t.TempDir(), "small.img")
		if _, err := WriteFile(path, root, opt); err == nil {
			t.Error("WriteFile accepted a size below RequiredSize")
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("WriteFile left %s behind: %v", path, err)
		}

		opt.Size = req
		img, st := writeImage(t, root, opt)
		if st.Size != req {
			t.Errorf("written size %d, want %d", st.Size, req)
		}
		fsck(t, img)
	}
}

// TestEmpty writes empty file systems (nil root, as for COS_PERSISTENT),
// with a journal, and checks the superblock with dumpe2fs and that the
// kernel mounts them read-write, journal and all.
func TestEmpty(t *testing.T) {
	needTools(t, "e2fsck", "dumpe2fs", "debugfs", "grub-fstest")
	uuid := [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77}
	for _, tc := range []struct {
		size    int64
		uuid    [16]byte
		wantID  string
		journal int // blocks
	}{
		// The derived UUID is pinned (Python: uuid5(uuid5(NAMESPACE_URL,
		// "https://github.com/kairos-io/kairos/internal/artifacts/ext4"),
		// "COS_PERSISTENT")): changing the derivation changes
		// every image.
		{size: 64 << 20, wantID: "a4d2e838-1ac0-599f-91ce-7a3389319e87", journal: 1024},
		{size: 3 << 30, uuid: uuid, wantID: "12345678-9abc-4def-8011-223344556677", journal: 16384},
	} {
		img := filepath.Join(t.TempDir(), "empty.img")
		st, err := WriteFile(img, nil, Options{Label: "COS_PERSISTENT", UUID: tc.uuid, Size: tc.size, Journal: true, ModTime: sourceDateEpoch})
		if err != nil {
			t.Fatal(err)
		}
		if st.Files != 2 || st.Size != tc.size || st.FreeInodes != st.Inodes-11 {
			t.Errorf("stats %+v", st)
		}
		fsck(t, img)
		checkJournalBackup(t, img)
		if ls := run(t, "grub-fstest", img, "ls", "/"); strings.TrimSpace(ls) != "lost+found/" {
			t.Errorf("grub-fstest ls /: %q", ls)
		}
		h := run(t, "dumpe2fs", "-h", img)
		for _, want := range []string{
			"Filesystem volume name:   COS_PERSISTENT",
			"Filesystem UUID:          " + tc.wantID,
			"Filesystem features:      has_journal ext_attr filetype extent sparse_super large_file huge_file dir_nlink extra_isize\n",
			"Filesystem state:         clean",
			"Filesystem OS type:       Linux",
			fmt.Sprintf("Block count:              %d\n", tc.size/blockSize),
			"Reserved block count:     0\n",
			fmt.Sprintf("Free blocks:              %d\n", st.FreeBlocks),
			fmt.Sprintf("Free inodes:              %d\n", st.FreeInodes),
			"Block size:               4096",
			"Inode size:\t          256",
			"Journal inode:            8",
			fmt.Sprintf("Total journal blocks:     %d\n", tc.journal),
			"Journal sequence:         0x00000001",
			"Journal start:            0",
			"Filesystem created:       Tue Nov 14 22:13:20 2023",
		} {
			if !strings.Contains(h, want) {
				t.Errorf("dumpe2fs -h lacks %q:\n%s", want, h)
			}
		}
		if blocks := allocatedBytes(t, img); blocks > 4<<20 {
			t.Errorf("empty %d MiB file system allocates %d KiB on the host: not sparse", tc.size>>20, blocks>>10)
		}

		// The kernel mounts it read-write; what it writes (through the
		// journal) leaves a clean file system.
		dir := mountImage(t, img, true)
		if err := os.WriteFile(filepath.Join(dir, "new"), randomBytes(7, 100000), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "a/b"), 0o755); err != nil {
			t.Fatal(err)
		}
		umount(t, dir)
		// The kernel updates the primary superblock and descriptors only.
		if err := ext4test.FsckPrimary(img); err != nil {
			t.Fatal(err)
		}
		dir = mountImage(t, img, false)
		if got, err := os.ReadFile(filepath.Join(dir, "new")); err != nil || !bytes.Equal(got, randomBytes(7, 100000)) {
			t.Errorf("file written by the kernel reads back wrong: %v", err)
		}
		umount(t, dir)
	}
}

// TestLargeFile writes a file above 4 GiB (large_file, i_size_high) with
// more than four extents, so an extent tree with an index block, and reads
// markers back through debugfs's block map, GRUB and the kernel. Its
// content is mostly zero, so that the host file stays sparse and the test
// fast.
func TestLargeFile(t *testing.T) {
	needTools(t, "e2fsck", "debugfs", "grub-fstest")
	const size = 4<<30 + 12345
	root := &fstree.Node{Mode: fs.ModeDir | 0o755, Children: []*fstree.Node{
		{Name: "small", Mode: 0o644, Size: 5, Open: fstree.BytesOpener([]byte("small"))},
		{Name: "big", Mode: 0o644, Size: size, Open: func() (io.ReadCloser, error) { return io.NopCloser(&markerReader{size: size}), nil }},
	}}
	img, _ := writeImage(t, root, Options{ModTime: sourceDateEpoch})
	fsck(t, img)
	if blocks := allocatedBytes(t, img); blocks > 64<<20 {
		t.Errorf("image allocates %d MiB on the host: zero blocks were written", blocks>>20)
	}

	offsets := []int64{0, 1 << 30, 4 << 30, size - 8}
	for off := int64(markerEvery); off < size; off += 37 * markerEvery {
		offsets = append(offsets, off)
	}
	var cmds []string
	cmds = append(cmds, "stat /big")
	for _, off := range offsets {
		cmds = append(cmds, fmt.Sprintf("bmap /big %d", off/blockSize))
	}
	out := debugfs(t, img, cmds...)
	st := parseStat(t, out[0])
	if st.Size != size {
		t.Errorf("size %d, want %d", st.Size, size)
	}
	if !strings.Contains(out[0], "(ETB0)") || strings.Contains(out[0], "(ETB1)") {
		t.Errorf("want an extent tree of depth 1:\n%s", out[0])
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, off := range offsets {
		var phys int64
		if _, err := fmt.Sscan(out[i+1], &phys); err != nil {
			t.Fatalf("bmap: %q", out[i+1])
		}
		got := make([]byte, 8)
		if _, err := f.ReadAt(got, phys*blockSize+off%blockSize); err != nil {
			t.Fatal(err)
		}
		if want := marker(off); !bytes.Equal(got, want) {
			t.Errorf("offset %d: block %d holds %x, want %x", off, phys, got, want)
		}
		if i < 6 {
			g := run(t, "grub-fstest", "-s", fmt.Sprint(off), "-n", "8", img, "cat", "/big")
			if g != string(marker(off)) {
				t.Errorf("grub-fstest cat /big at %d: %x, want %x", off, g, marker(off))
			}
		}
	}

	dir := mountImage(t, img, false)
	k, err := os.Open(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if fi, err := k.Stat(); err != nil || fi.Size() != size {
		t.Fatalf("kernel: size %v, %v", fi.Size(), err)
	}
	for _, off := range offsets {
		got := make([]byte, 8)
		if _, err := k.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, marker(off)) {
			t.Errorf("kernel: offset %d reads %x, want %x", off, got, marker(off))
		}
	}
}

// markerEvery: the large file is zero except for an 8-byte marker (its
// offset) at every multiple of this, and at its last 8 bytes.
const markerEvery = 16 << 20

func marker(off int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(off)|1<<63)
}

type markerReader struct{ off, size int64 }

func (r *markerReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.size-r.off)]
	clear(p)
	end := r.off + int64(len(p))
	for m := (r.off + markerEvery - 1) / markerEvery * markerEvery; m+8 <= end; m += markerEvery {
		copy(p[m-r.off:], marker(m))
	}
	if last := r.size - 8; last >= r.off && last+8 <= end {
		copy(p[last-r.off:], marker(last))
	}
	r.off = end
	return len(p), nil
}

func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-B1", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	fmt.Sscan(string(out), &n)
	return n
}

// TestExtentTreeShape builds trees deeper than the large file test can
// reach (more than 4*340 extents need two index levels) and walks them
// back.
func TestExtentTreeShape(t *testing.T) {
	for _, n := range []int{0, 1, 4, 5, 340, 1360, 1361, 5000} {
		exts := make([]extent, n)
		for i := range exts {
			exts[i] = extent{logical: uint32(i) * 10, start: 100000 + uint32(i)*20, length: 10}
		}
		blocks := make([]uint32, treeBlocks(n))
		for i := range blocks {
			blocks[i] = 9000 + uint32(i)
		}
		iblock, nodes := buildExtentTree(exts, blocks)
		if len(nodes) != len(blocks) {
			t.Fatalf("%d extents: %d nodes for %d blocks", n, len(nodes), len(blocks))
		}
		byBlock := map[uint32][]byte{}
		for i, b := range blocks {
			byBlock[b] = nodes[i]
		}
		var got []extent
		var walkNode func(b []byte, max int, wantDepth int) uint32
		walkNode = func(b []byte, max int, wantDepth int) uint32 {
			le := binary.LittleEndian
			if le.Uint16(b) != extentMagic || int(le.Uint16(b[4:])) != max {
				t.Fatalf("%d extents: bad header %x", n, b[:12])
			}
			entries, depth := int(le.Uint16(b[2:])), int(le.Uint16(b[6:]))
			if wantDepth >= 0 && depth != wantDepth {
				t.Fatalf("%d extents: depth %d, want %d", n, depth, wantDepth)
			}
			first := uint32(0)
			for i := range entries {
				e := b[12*(i+1):]
				if i == 0 {
					first = le.Uint32(e)
				}
				if depth == 0 {
					got = append(got, extent{logical: le.Uint32(e), length: uint32(le.Uint16(e[4:])), start: le.Uint32(e[8:])})
					continue
				}
				child, ok := byBlock[le.Uint32(e[4:])]
				if !ok {
					t.Fatalf("%d extents: index to unknown block %d", n, le.Uint32(e[4:]))
				}
				if f := walkNode(child, extentsPerBlock, depth-1); f != le.Uint32(e) {
					t.Fatalf("%d extents: index says first block %d, node starts at %d", n, le.Uint32(e), f)
				}
			}
			return first
		}
		walkNode(iblock[:], extentsInInode, -1)
		if fmt.Sprint(got) != fmt.Sprint(exts) && (n > 0 || len(got) > 0) {
			t.Errorf("%d extents: read back %d", n, len(got))
		}
	}
}

// checkJournalBackup compares the superblock's copy of the journal inode's
// block map and size (s_jnl_blocks, which e2fsck uses to recover a damaged
// journal inode) with the journal inode as debugfs reads it.
func checkJournalBackup(t *testing.T, img string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, superblockSize)
	if _, err := f.ReadAt(sb, superblockOffset); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	jb := sb[0x10C : 0x10C+17*4]
	if le.Uint16(jb) != extentMagic || le.Uint16(jb[6:]) != 0 || le.Uint16(jb[2:]) != 1 {
		t.Fatalf("s_jnl_blocks does not hold a contiguous journal (one extent): %x", jb[:24])
	}
	st := debugfs(t, img, "stat <8>")[0]
	for i := range int(le.Uint16(jb[2:])) {
		e := jb[12*(i+1):]
		first, n, start := le.Uint32(e), uint32(le.Uint16(e[4:])), le.Uint32(e[8:])
		want := fmt.Sprintf("(%d-%d):%d-%d", first, first+n-1, start, start+n-1)
		if !strings.Contains(st, want) {
			t.Errorf("s_jnl_blocks extent %s is not in the journal inode:\n%s", want, st)
		}
	}
	size := uint64(le.Uint32(jb[15*4:]))<<32 | uint64(le.Uint32(jb[16*4:]))
	if got := parseStat(t, st).Size; got != size {
		t.Errorf("s_jnl_blocks size %d, journal inode %d", size, got)
	}
}

// checkXattrBlockHash verifies the attribute block header's h_hash of
// path (which e2fsck does not check but the kernel's block sharing uses):
// the rotate-xor of its entries' hashes.
func checkXattrBlockHash(t *testing.T, img, path string) {
	t.Helper()
	st := debugfs(t, img, "stat "+path)[0]
	var blk int64
	if _, err := fmt.Sscanf(st[strings.Index(st, "File ACL: "):], "File ACL: %d", &blk); err != nil || blk == 0 {
		t.Fatalf("%s: no attribute block: %v\n%s", path, err, st)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, blockSize)
	if _, err := f.ReadAt(b, blk*blockSize); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if le.Uint32(b) != 0xEA020000 || le.Uint32(b[4:]) != 1 || le.Uint32(b[8:]) != 1 {
		t.Fatalf("%s: attribute block header %x", path, b[:16])
	}
	var h uint32
	for e := b[32:]; le.Uint32(e) != 0; e = e[(16+int(e[0])+3)&^3:] {
		h = h<<16 ^ h>>16 ^ le.Uint32(e[12:])
	}
	if got := le.Uint32(b[12:]); got != h {
		t.Errorf("%s: h_hash %#x, want %#x", path, got, h)
	}
}

// TestEdgeCases: a tree bringing its own lost+found, trees that cannot be
// written, and content that does not match its declared size.
func TestEdgeCases(t *testing.T) {
	needTools(t, "e2fsck", "debugfs")
	root := &fstree.Node{Mode: fs.ModeDir | 0o755, Children: []*fstree.Node{
		with(dir("lost+found", 0o700, file("#1234", 0o644, []byte("recovered"))), func(n *fstree.Node) { n.UID = 0 }),
		file("z", 0o644, []byte("z")),
	}}
	img, _ := writeImage(t, root, Options{ModTime: sourceDateEpoch})
	if err := ext4test.Verify(img, root); err != nil {
		t.Error(err)
	}
	if ino := parseStat(t, debugfs(t, img, "stat /lost+found")[0]).Ino; ino != lostFoundIno {
		t.Errorf("lost+found is inode %d, want %d", ino, lostFoundIno)
	}

	bad := func(children ...*fstree.Node) *fstree.Node {
		return &fstree.Node{Mode: fs.ModeDir | 0o755, Children: children}
	}
	for name, tc := range map[string]struct {
		root *fstree.Node
		opt  Options
		want string
	}{
		"lost+found file": {bad(file("lost+found", 0o644, nil)), Options{}, "must be a directory"},
		"duplicate":       {bad(file("a", 0o644, nil), file("a", 0o644, nil)), Options{}, "duplicate"},
		"slash":           {bad(file("a/b", 0o644, nil)), Options{}, "contains '/'"},
		"dot":             {bad(file("..", 0o644, nil)), Options{}, "invalid name"},
		"long name":       {bad(file(strings.Repeat("n", 256), 0o644, nil)), Options{}, "longer than 255"},
		"empty symlink":   {bad(symlink("l", "")), Options{}, "empty symlink target"},
		"long symlink":    {bad(symlink("l", strings.Repeat("x", blockSize))), Options{}, "symlink target"},
		"root not dir":    {file("", 0o644, nil), Options{}, "root is not a directory"},
		"label":           {nil, Options{Label: "LABEL-LONGER-THAN-16"}, "longer than 16 bytes"},
		"xattr namespace": {bad(with(file("x", 0o644, nil), func(n *fstree.Node) { n.Xattrs = map[string][]byte{"os2.x": nil} })), Options{}, "namespace"},
		"xattr too large": {bad(with(file("x", 0o644, nil), func(n *fstree.Node) { n.Xattrs = map[string][]byte{"user.x": make([]byte, 5000)} })), Options{}, "more than one"},
		"device range":    {bad(&fstree.Node{Name: "d", Mode: fs.ModeDevice, DevMajor: 4096}), Options{}, "out of range"},
		"irregular":       {bad(&fstree.Node{Name: "i", Mode: fs.ModeIrregular}), Options{}, "unsupported file type"},
		"no Open":         {bad(&fstree.Node{Name: "f", Size: 3}), Options{}, "no Open"},
		"content short":   {bad(&fstree.Node{Name: "f", Size: 3, Open: fstree.BytesOpener([]byte("ab"))}), Options{}, "ends before its declared size"},
		"content long":    {bad(&fstree.Node{Name: "f", Size: 3, Open: fstree.BytesOpener([]byte("abcd"))}), Options{}, "longer than its declared size"},
		"negative size":   {nil, Options{Size: -1}, "negative"},
		"beyond 32 bits":  {nil, Options{Size: 17 << 40}, "16 TiB"},
		"ACL not an ACL":  {bad(with(file("x", 0o644, nil), func(n *fstree.Node) { n.Xattrs = map[string][]byte{aclAccessName: []byte("junk")} })), Options{}, "ACL version"},
	} {
		path := filepath.Join(t.TempDir(), "bad.img")
		_, err := WriteFile(path, tc.root, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ext4: ") {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, tc.want)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: WriteFile left the image behind", name)
		}
	}

	// More subdirectories than a link count holds: dir_nlink's link
	// count of 1.
	subdirs := make([]*fstree.Node, maxLinks)
	for i := range subdirs {
		subdirs[i] = dir(fmt.Sprint(i), 0o755)
	}
	tr, err := newTree(&fstree.Node{Mode: fs.ModeDir | 0o755, Children: subdirs}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if root := tr.order[0]; root.ino != rootIno || root.links != 1 {
		t.Errorf("root with %d subdirectories: inode %d has %d links, want 1", maxLinks+1, root.ino, root.links)
	}
}

// TestSizes writes a small tree at sizes whose last block group is short:
// one block (left out), barely more than its metadata, and with a backup
// superblock; the file system is the size asked, less such a group.
func TestSizes(t *testing.T) {
	needTools(t, "e2fsck")
	root := &fstree.Node{Mode: fs.ModeDir | 0o755, Children: []*fstree.Node{
		file("f", 0o644, randomBytes(9, 3*blockSize+1)),
	}}
	const group = blocksPerGroup * blockSize
	for _, tc := range []struct{ size, want int64 }{
		{1 << 20, 1 << 20},
		{64<<20 + 12<<10 + 100, 64<<20 + 12<<10},
		{group + blockSize, group},   // group 1 of one block: left out
		{group + 4*blockSize, group}, // too short for its superblock copy, bitmaps and inode table
		{group + 600*blockSize, group + 600*blockSize},
		{3*group + 700*blockSize, 3*group + 700*blockSize}, // group 3 has a backup too
		{5*group + 1000*blockSize, 5*group + 1000*blockSize},
	} {
		img, st := writeImage(t, root, Options{Size: tc.size})
		if st.Size != tc.want {
			t.Errorf("size %d: file system of %d bytes, want %d", tc.size, st.Size, tc.want)
		}
		fsck(t, img)
	}
}
