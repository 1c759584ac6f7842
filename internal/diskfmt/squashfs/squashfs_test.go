package squashfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/diskfmt/squashfs/squashfstest"
	"github.com/kairos-io/kairos/internal/fstree"
)

var testTime = time.Unix(1700000000, 0)

// TestJudges writes the test tree with each compressor and has the
// reference tools and the kernel read it back.
func TestJudges(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	src := buildSourceTree(t, dir, DefaultBlockSize)
	root, err := fstree.DirSource(src.dir)
	if err != nil {
		t.Fatal(err)
	}

	for _, comp := range []string{"gzip", "xz", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			var calls int
			var last [2]int64
			img, st := writeImage(t, dir, comp+".sqfs", root, Options{
				Compression: comp,
				ModTime:     testTime,
				Progress: func(done, total int64) {
					calls++
					if done < last[0] || done > total {
						t.Errorf("progress %d/%d after %d", done, total, last[0])
					}
					last = [2]int64{done, total}
				},
			})
			checkStats(t, st, src)
			if calls == 0 || last[0] != last[1] || last[1] != src.dataBytes {
				t.Errorf("progress: %d calls, last %d/%d, want total %d", calls, last[0], last[1], src.dataBytes)
			}

			// unsquashfs -s: compressor, block size, mkfs time.
			info := squashfsInfo(t, img)
			for _, want := range []string{
				"Compression " + comp,
				"Block size 1048576",
				"Number of inodes " + fmt.Sprint(st.Inodes),
				"Duplicates are removed",
				"Filesystem is exportable via NFS",
			} {
				if !strings.Contains(info, want) {
					t.Errorf("unsquashfs -s: missing %q in\n%s", want, info)
				}
			}
			if got := strings.TrimSpace(run(t, "unsquashfs", "-mkfs-time", img)); got != "1700000000" {
				t.Errorf("mkfs time %s, want 1700000000", got)
			}

			// unsquashfs -lln and -pf: names, modes, numeric owners,
			// sizes, device numbers, link targets, exact mtimes,
			// hardlinks (one inode, listed as links to the first
			// name), all content.
			if err := squashfstest.Verify(img, root, squashfstest.Options{}); err != nil {
				t.Error(err)
			}

			// unsquashfs extraction as root: contents, owners, modes,
			// devices, xattrs (security.capability included), hardlinks.
			ex := filepath.Join(dir, comp+"-extracted")
			if err := squashfstest.Extract(img, ex); err != nil {
				t.Fatal(err)
			}
			if err := squashfstest.VerifyExtracted(ex, root); err != nil {
				t.Error(err)
			}

			// The kernel.
			if err := squashfstest.VerifyMounted(mountImage(t, dir, img), root); err != nil {
				t.Error(err)
			}
		})
	}
}

func checkStats(t *testing.T, st Stats, src sourceTree) {
	t.Helper()
	if st.DuplicateFiles != src.duplicateFiles {
		t.Errorf("stats: %d duplicate files, want %d", st.DuplicateFiles, src.duplicateFiles)
	}
	if st.SparseBlocks != src.sparseBlocks {
		t.Errorf("stats: %d sparse blocks, want %d", st.SparseBlocks, src.sparseBlocks)
	}
	if st.Hardlinks != src.hardlinks {
		t.Errorf("stats: %d hardlinks, want %d", st.Hardlinks, src.hardlinks)
	}
	if st.DataBytes != src.dataBytes {
		t.Errorf("stats: %d data bytes, want %d", st.DataBytes, src.dataBytes)
	}
	if st.ImageSize%4096 != 0 || st.BytesUsed > st.ImageSize || st.ImageSize-st.BytesUsed >= 4096 {
		t.Errorf("stats: bytes used %d, image size %d: want padding to 4 KiB", st.BytesUsed, st.ImageSize)
	}
}

// TestSmallBlocks uses 4 KiB blocks: many blocks and fragment blocks, a
// fragment table over several metadata blocks, block_log 12.
func TestSmallBlocks(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	src := buildSourceTree(t, dir, 4096)
	root, err := fstree.DirSource(src.dir)
	if err != nil {
		t.Fatal(err)
	}
	img, st := writeImage(t, dir, "small.sqfs", root, Options{BlockSize: 4096, ModTime: testTime})
	checkStats(t, st, src)
	if st.FragmentBlocks < 20 {
		t.Errorf("only %d fragment blocks: the tree should need many at 4 KiB", st.FragmentBlocks)
	}
	if info := squashfsInfo(t, img); !strings.Contains(info, "Block size 4096") {
		t.Errorf("unsquashfs -s: want block size 4096 in\n%s", info)
	}
	if err := squashfstest.Verify(img, root, squashfstest.Options{}); err != nil {
		t.Error(err)
	}
	if err := squashfstest.VerifyMounted(mountImage(t, dir, img), root); err != nil {
		t.Error(err)
	}
}

// TestNoFragmentsNoDedupeNoExport turns the optional features off: tails
// become short blocks, duplicates are stored again, no export table.
func TestNoFragmentsNoDedupeNoExport(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	src := buildSourceTree(t, dir, 64<<10)
	root, err := fstree.DirSource(src.dir)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{BlockSize: 64 << 10, ModTime: testTime, Compression: "zstd"}
	deduped, st1 := writeImage(t, dir, "dedupe.sqfs", root, opt)
	opt.NoDuplicates, opt.NoFragments, opt.NoExport = true, true, true
	plain, st2 := writeImage(t, dir, "plain.sqfs", root, opt)
	if st2.DuplicateFiles != 0 || st2.FragmentBlocks != 0 {
		t.Errorf("stats with dedupe/fragments off: %+v", st2)
	}
	if st1.DuplicateFiles != src.duplicateFiles {
		t.Errorf("%d duplicates, want %d", st1.DuplicateFiles, src.duplicateFiles)
	}
	if st2.BytesUsed <= st1.BytesUsed {
		t.Errorf("without dedupe the image is %d bytes, with dedupe %d: duplicates were not stored once", st2.BytesUsed, st1.BytesUsed)
	}
	info := squashfsInfo(t, plain)
	for _, want := range []string{"Filesystem is not exportable via NFS", "Fragments are not stored", "Duplicates are not removed"} {
		if !strings.Contains(info, want) {
			t.Errorf("unsquashfs -s: missing %q in\n%s", want, info)
		}
	}
	if err := squashfstest.Verify(plain, root, squashfstest.Options{}); err != nil {
		t.Error(err)
	}
	for _, img := range []string{plain, deduped} {
		if err := squashfstest.VerifyMounted(mountImage(t, dir, img), root); err != nil {
			t.Error(err)
		}
	}
}

// TestReproducible: the image depends on the input only, not on the
// number of workers, scheduling, the two-pass dedupe path, or the order
// children are given in.
func TestReproducible(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	src := buildSourceTree(t, dir, 64<<10)
	write := func(root *fstree.Node, workers int) []byte {
		var buf writeSeeker
		if _, err := Write(&buf, root, Options{Workers: workers, BlockSize: 64 << 10, ModTime: testTime}); err != nil {
			t.Fatal(err)
		}
		return buf.b
	}
	root1, err := fstree.DirSource(src.dir)
	if err != nil {
		t.Fatal(err)
	}
	root2, err := fstree.DirSource(src.dir)
	if err != nil {
		t.Fatal(err)
	}
	reverseChildren(root2)
	a := write(root1, 1)
	b := write(root2, 8)
	if !bytes.Equal(a, b) {
		t.Fatalf("Workers 1 and 8 gave different images (%d and %d bytes)", len(a), len(b))
	}
	// Force every possible duplicate through the hash-then-reread path.
	old := inMemoryDedupeLimit
	inMemoryDedupeLimit = 0
	c := write(root1, 3)
	inMemoryDedupeLimit = old
	if !bytes.Equal(a, c) {
		t.Fatalf("the two-pass dedupe path gave a different image")
	}
	// And an image differs when the mkfs time does.
	var buf writeSeeker
	if _, err := Write(&buf, root1, Options{BlockSize: 64 << 10, ModTime: testTime.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, buf.b) {
		t.Fatalf("mkfs time not stored")
	}
}

func reverseChildren(n *fstree.Node) {
	for i, j := 0, len(n.Children)-1; i < j; i, j = i+1, j-1 {
		n.Children[i], n.Children[j] = n.Children[j], n.Children[i]
	}
	for _, c := range n.Children {
		reverseChildren(c)
	}
}

// writeSeeker is an in-memory io.WriteSeeker.
type writeSeeker struct {
	b   []byte
	off int64
}

func (w *writeSeeker) Write(p []byte) (int, error) {
	if need := int(w.off) + len(p); need > len(w.b) {
		w.b = append(w.b, make([]byte, need-len(w.b))...)
	}
	copy(w.b[w.off:], p)
	w.off += int64(len(p))
	return len(p), nil
}

func (w *writeSeeker) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		w.off = off
	case io.SeekCurrent:
		w.off += off
	case io.SeekEnd:
		w.off = int64(len(w.b)) + off
	}
	return w.off, nil
}

// TestMemoryTree feeds a tree built in memory, as the OCI-layer source
// will: hardlinks by LinkID, xattrs in a namespace squashfs cannot store,
// out-of-range times, a file larger than 4 GiB (extended inode, 64-bit
// size, sparse blocks) read back through the kernel.
func TestMemoryTree(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	const huge = 4<<30 + 5
	tail := []byte("tail!")
	root := &fstree.Node{Mode: fs.ModeDir | 0o755, ModTime: 1, Children: []*fstree.Node{
		{Name: "hello", Mode: 0o644, Size: 5, Open: fstree.BytesOpener([]byte("hello")), LinkID: 7, ModTime: 2,
			Xattrs: map[string][]byte{"user.a": []byte("1"), "system.posix_acl_access": []byte("acl")}},
		{Name: "sub", Mode: fs.ModeDir | 0o700, UID: 5, GID: 6, ModTime: -100, Children: []*fstree.Node{
			{Name: "hello-again", Mode: 0o600, Size: 5, Open: fstree.BytesOpener([]byte("hello")), LinkID: 7},
			{Name: "huge", Mode: 0o644, Size: huge, ModTime: 1 << 40, Open: func() (io.ReadCloser, error) {
				return io.NopCloser(io.MultiReader(io.LimitReader(zeroReader{}, huge-int64(len(tail))), bytes.NewReader(tail))), nil
			}},
			{Name: "chr", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, DevMajor: 4095, DevMinor: 1<<20 - 1},
		}},
	}}
	img, st := writeImage(t, dir, "mem.sqfs", root, Options{Compression: "zstd", Level: 1, ModTime: testTime})
	if st.Hardlinks != 1 || st.SkippedXattrs != 1 || st.ClampedTimes != 2 || st.SparseBlocks != 4096 {
		t.Errorf("stats %+v: want 1 hardlink, 1 skipped xattr, 2 clamped times, 4096 sparse blocks", st)
	}
	mnt := mountImage(t, dir, img)
	var chr unix.Stat_t
	if err := unix.Lstat(filepath.Join(mnt, "sub/chr"), &chr); err != nil || unix.Major(chr.Rdev) != 4095 || unix.Minor(chr.Rdev) != 1<<20-1 {
		t.Errorf("sub/chr: device %d:%d (%v), want 4095:1048575", unix.Major(chr.Rdev), unix.Minor(chr.Rdev), err)
	}
	a, err1 := os.Stat(filepath.Join(mnt, "hello"))
	b, err2 := os.Stat(filepath.Join(mnt, "sub/hello-again"))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) || a.Mode() != 0o644 {
		t.Errorf("hardlink by LinkID: %v %v %v %v", a, b, err1, err2)
	}
	read, err := fstree.DirSource(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if x := read.Child("hello").Xattrs; len(x) != 1 || string(x["user.a"]) != "1" {
		t.Errorf("xattrs %q, want only user.a", x)
	}
	h, err := os.Open(filepath.Join(mnt, "sub/huge"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fi, _ := h.Stat()
	if fi.Size() != huge || fi.ModTime().Unix() != 1<<32-1 {
		t.Errorf("huge: size %d mtime %d, want %d and 2^32-1", fi.Size(), fi.ModTime().Unix(), int64(huge))
	}
	got := make([]byte, 10)
	if _, err := h.ReadAt(got, huge-10); err != nil || string(got) != "\x00\x00\x00\x00\x00tail!" {
		t.Errorf("huge: last bytes %q (%v)", got, err)
	}
	if _, err := h.ReadAt(got, 3<<30); err != nil || !bytes.Equal(got, make([]byte, 10)) {
		t.Errorf("huge: bytes at 3 GiB %q (%v)", got, err)
	}
	if fi, err := os.Stat(filepath.Join(mnt, "sub")); err != nil || fi.ModTime().Unix() != 0 {
		t.Errorf("sub: mtime %v (%v), want clamped to 0", fi.ModTime(), err)
	}
	listing := run(t, "unsquashfs", "-n", "-lln", img)
	for _, want := range []string{"4294967301", "-1,255" /* 4095:1048575 as unsquashfs 4.5.1 prints it */, "5/6"} {
		if !strings.Contains(listing, want) {
			t.Errorf("unsquashfs -lln: missing %q in\n%s", want, listing)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestInvalidInput checks that bad trees and options are refused with an
// error saying why.
func TestInvalidInput(t *testing.T) {
	file := func(name string) *fstree.Node { return &fstree.Node{Name: name, Mode: 0o644} }
	dirOf := func(c ...*fstree.Node) *fstree.Node { return &fstree.Node{Mode: fs.ModeDir | 0o755, Children: c} }
	cases := []struct {
		name string
		root *fstree.Node
		opt  Options
		want string
	}{
		{"unknown compressor", dirOf(), Options{Compression: "lz4"}, `unknown compression "lz4" (valid: gzip, xz, zstd)`},
		{"block size not a power of two", dirOf(), Options{BlockSize: 100000}, "power of two between 4096 (4 KiB) and 1048576 (1 MiB)"},
		{"block size too large", dirOf(), Options{BlockSize: 2 << 20}, "power of two"},
		{"block size too small", dirOf(), Options{BlockSize: 2048}, "power of two"},
		{"gzip level", dirOf(), Options{Level: 10}, "gzip level 10 out of range (valid: 1-9"},
		{"zstd level", dirOf(), Options{Compression: "zstd", Level: 23}, "zstd level 23 out of range"},
		{"workers", dirOf(), Options{Workers: -1}, "workers -1"},
		{"mkfs time", dirOf(), Options{ModTime: time.Unix(-5, 0)}, "out of range"},
		{"root not a dir", file(""), Options{}, "root is not a directory"},
		{"duplicate name", dirOf(file("a"), file("a")), Options{}, `duplicate entry "a"`},
		{"slash in name", dirOf(file("a/b")), Options{}, "'/'"},
		{"dot name", dirOf(file("..")), Options{}, "invalid name"},
		{"long name", dirOf(file(strings.Repeat("x", 257))), Options{}, "longer than 256"},
		{"no opener", dirOf(&fstree.Node{Name: "f", Mode: 0o644, Size: 3}), Options{}, "no Open function"},
		{"hardlinked dir", dirOf(&fstree.Node{Name: "d", Mode: fs.ModeDir, LinkID: 1}), Options{}, "cannot be hardlinked"},
		{"hardlink type mismatch", dirOf(&fstree.Node{Name: "a", Mode: 0o644, LinkID: 1}, &fstree.Node{Name: "b", Mode: fs.ModeSymlink, Target: "x", LinkID: 1}), Options{}, "different file type"},
		{"empty symlink", dirOf(&fstree.Node{Name: "l", Mode: fs.ModeSymlink}), Options{}, "symlink target length 0"},
		{"device range", dirOf(&fstree.Node{Name: "d", Mode: fs.ModeDevice, DevMajor: 4096}), Options{}, "out of range"},
		{"bad type", dirOf(&fstree.Node{Name: "x", Mode: fs.ModeIrregular}), Options{}, "unsupported file type"},
		{"short content", dirOf(&fstree.Node{Name: "f", Mode: 0o644, Size: 10, Open: fstree.BytesOpener([]byte("abc"))}), Options{}, "/f: content shorter than its size 10"},
		{"long content", dirOf(&fstree.Node{Name: "f", Mode: 0o644, Size: 2, Open: fstree.BytesOpener([]byte("abc"))}), Options{}, "/f: content longer than its size 2"},
		{"open error", dirOf(&fstree.Node{Name: "f", Mode: 0o644, Size: 2, Open: func() (io.ReadCloser, error) { return nil, fs.ErrPermission }}), Options{}, "opening /f: permission denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf writeSeeker
			_, err := Write(&buf, c.root, c.opt)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got error %v, want one containing %q", err, c.want)
			}
		})
	}
	// Errors from DirSource name the path.
	if _, err := fstree.DirSource(filepath.Join(t.TempDir(), "missing")); err == nil || !regexp.MustCompile(`lstat .*missing`).MatchString(err.Error()) {
		t.Errorf("DirSource of a missing dir: %v", err)
	}
}

// BenchmarkWrite measures a small generated tree (4 MiB of text in files
// of all sizes) with each compressor.
func BenchmarkWrite(b *testing.B) {
	var children []*fstree.Node
	var total int64
	for i := 0; i < 400; i++ {
		size := (i * 7919) % 40000
		if i%50 == 0 {
			size = 1<<20 + i
		}
		line := []byte(fmt.Sprintf("line %d of some file content\n", i))
		data := bytes.Repeat(line, size/len(line)+1)[:size]
		children = append(children, &fstree.Node{Name: fmt.Sprintf("f%03d", i), Mode: 0o644, Size: int64(size), Open: fstree.BytesOpener(data)})
		total += int64(size)
	}
	root := &fstree.Node{Mode: fs.ModeDir | 0o755, Children: children}
	for _, comp := range []string{"gzip", "zstd", "xz"} {
		b.Run(comp, func(b *testing.B) {
			b.SetBytes(total)
			for i := 0; i < b.N; i++ {
				var buf writeSeeker
				if _, err := Write(&buf, root, Options{Compression: comp}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLargeDirectories: a directory of 33000 entries (directory index,
// extended directory inode, many headers and metadata blocks) and a
// hardlink whose inode number is more than 32767 away from its
// neighbour's (a new directory header is needed). The kernel must find
// every name through the index, refuse missing ones, and list them all.
func TestLargeDirectories(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	const n = 33000
	var big []*fstree.Node
	var names []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("entry-%05d-with-a-reasonably-long-name", i)
		names = append(names, name)
		big = append(big, &fstree.Node{Name: name, Mode: 0o644})
	}
	root := &fstree.Node{Mode: fs.ModeDir | 0o755, Children: []*fstree.Node{
		{Name: "a", Mode: fs.ModeDir | 0o755, Children: []*fstree.Node{
			{Name: "target", Mode: 0o644, Size: 3, Open: fstree.BytesOpener([]byte("abc")), LinkID: 1},
		}},
		{Name: "big", Mode: fs.ModeDir | 0o755, Children: big},
		{Name: "z", Mode: fs.ModeDir | 0o755, Children: []*fstree.Node{
			{Name: "link", Mode: 0o644, Size: 3, Open: fstree.BytesOpener([]byte("abc")), LinkID: 1},
			{Name: "zfile", Mode: 0o644},
		}},
	}}
	img, _ := writeImage(t, dir, "dirs.sqfs", root, Options{ModTime: testTime})

	// White box: "big" has an extended inode with an index.
	r := readImage(t, img)
	bigIno := r.lookup(t, r.rootRef(), "big")
	if typ, icount := r.dirIndexCount(t, bigIno); typ != 8 || icount < 10 {
		t.Errorf("big: inode type %d with %d index entries, want an extended directory (8) with an index", typ, icount)
	}

	mnt := mountImage(t, dir, img)
	f, err := os.Open(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	listed, err := f.Readdirnames(-1)
	f.Close()
	if err != nil || strings.Join(listed, "\n") != strings.Join(names, "\n") {
		t.Fatalf("readdir big: %d names (%v), want %d in order", len(listed), err, n)
	}
	for _, name := range names {
		if _, err := os.Lstat(filepath.Join(mnt, "big", name)); err != nil {
			t.Fatalf("lookup: %v", err)
		}
	}
	for _, missing := range []string{"entry-16500-x", "a", "zzz", "entry-00000-with-a-reasonably-long-nam"} {
		if _, err := os.Lstat(filepath.Join(mnt, "big", missing)); !os.IsNotExist(err) {
			t.Errorf("lookup of missing %q: %v", missing, err)
		}
	}
	a, err1 := os.Stat(filepath.Join(mnt, "a/target"))
	b, err2 := os.Stat(filepath.Join(mnt, "z/link"))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		t.Errorf("hardlink across a big inode number gap: %v %v", err1, err2)
	}
	if out := run(t, "unsquashfs", "-n", "-l", img, "/z"); !strings.Contains(out, "squashfs-root/z/link") || !strings.Contains(out, "squashfs-root/z/zfile") {
		t.Errorf("unsquashfs -l /z:\n%s", out)
	}
}

// TestWriteAtOffset: an image written after other data (an offset into a
// disk image) is self-contained: unsquashfs reads it with -o.
func TestWriteAtOffset(t *testing.T) {
	root := &fstree.Node{Mode: fs.ModeDir | 0o755, Children: []*fstree.Node{
		{Name: "f", Mode: 0o644, Size: 6, Open: fstree.BytesOpener([]byte("hello\n"))},
	}}
	buf := &writeSeeker{b: bytes.Repeat([]byte{0xAA}, 8192), off: 8192}
	st, err := Write(buf, root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if buf.off != 8192+st.ImageSize || int64(len(buf.b)) != buf.off {
		t.Fatalf("writer left at %d, image of %d bytes from 8192", buf.off, st.ImageSize)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, buf.b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := squashfstest.Verify(img, root, squashfstest.Options{Offset: 8192}); err != nil {
		t.Error(err)
	}
}

// TestCancel: a cancelled context stops the write with its error.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	root := &fstree.Node{Mode: fs.ModeDir | 0o755, Children: []*fstree.Node{
		{Name: "f", Mode: 0o644, Size: 3 << 20, Open: func() (io.ReadCloser, error) {
			return io.NopCloser(io.LimitReader(zeroReader{}, 3<<20)), nil
		}},
	}}
	if _, err := WriteContext(ctx, &writeSeeker{}, root, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestGrub has GRUB's own squash4 driver (through grub-fstest, the same
// code as in the boot loader) read the gzip and xz images: the boot path
// reads kernels and configs from squashfs with it. GRUB has no zstd
// squashfs support. Fails without grub-fstest (Debian package
// grub-common).
func TestGrub(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("grub-fstest"); err != nil {
		t.Fatal("grub-fstest not installed (apt-get install grub-common; ./earthly.sh +test installs it)")
	}
	dir := t.TempDir()
	src := buildSourceTree(t, dir, DefaultBlockSize)
	root, err := fstree.DirSource(src.dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	var walk func(rel string, n *fstree.Node)
	walk = func(rel string, n *fstree.Node) {
		// Every shape of file (blocks, tails, sparse, raw, duplicates,
		// hardlinks, long names, xattrs), not all 700 small ones: each
		// grub-fstest run costs a process and an image scan.
		if n.Mode.IsRegular() && (strings.HasPrefix(rel, "files/") ||
			strings.HasPrefix(rel, "dup/big") || strings.HasPrefix(rel, "links/") ||
			strings.HasPrefix(rel, "names/nnn") || strings.HasSuffix(rel, "0007-of-the-big-directory")) {
			files = append(files, rel)
		}
		for _, c := range n.Children {
			walk(path.Join(rel, c.Name), c)
		}
	}
	walk("", root)
	for _, comp := range []string{"gzip", "xz"} {
		t.Run(comp, func(t *testing.T) {
			img, _ := writeImage(t, dir, comp+".sqfs", root, Options{Compression: comp, ModTime: testTime})
			for _, f := range files {
				run(t, "grub-fstest", img, "cmp", "/"+f, filepath.Join(src.dir, f))
			}
			ls := run(t, "grub-fstest", img, "ls", "/many/")
			if n := len(strings.Fields(ls)); n != 700 {
				t.Errorf("grub ls /many: %d names, want 700", n)
			}
		})
	}
}
