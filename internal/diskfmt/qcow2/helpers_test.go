package qcow2

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// write is a chunk of the raw source image; everything else is a hole.
type write struct {
	off  int64
	data []byte
}

// randomBytes returns deterministic pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// makeRaw creates a sparse raw image of size bytes holding writes: cheap even
// for gigabytes, since only the written blocks use disk space.
func makeRaw(t testing.TB, path string, size int64, writes []write) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		if _, err := f.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
	}
}

// expectedClusters computes independently of the package which clusters
// hold a non-zero byte.
func expectedClusters(writes []write, cs int64) map[int64]bool {
	set := map[int64]bool{}
	for _, w := range writes {
		for i, b := range w.data {
			if b != 0 {
				set[(w.off+int64(i))/cs] = true
			}
		}
	}
	return set
}

func convertFile(t testing.TB, raw, out string, opt Options) {
	t.Helper()
	src, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := Convert(dst, src, fi.Size(), opt); err != nil {
		dst.Close()
		t.Fatalf("Convert: %v", err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// needTool fails the test when a reference tool is not installed (the
// project's setup installs qemu-utils, gdisk, dosfstools and mtools).
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not installed: ./earthly.sh +test installs the reference tools (see APT_PACKAGES)", name)
	}
}

// run runs a reference tool and fails the test on a non-zero exit.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// sameContent compares two files byte for byte without reading the holes
// they share: outside the union of their data extents both read as zeros by
// definition, inside it every byte is compared.
func sameContent(t testing.TB, a, b string) {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	sa, _ := fa.Stat()
	sb, _ := fb.Stat()
	if sa.Size() != sb.Size() {
		t.Fatalf("%s is %d bytes, %s is %d bytes", filepath.Base(a), sa.Size(), filepath.Base(b), sb.Size())
	}
	exts := append(dataExtents(fa, sa.Size()), dataExtents(fb, sb.Size())...)
	sort.Slice(exts, func(i, j int) bool { return exts[i].start < exts[j].start })
	var merged []extent
	for _, e := range exts {
		if n := len(merged); n > 0 && e.start <= merged[n-1].end {
			merged[n-1].end = max(merged[n-1].end, e.end)
			continue
		}
		merged = append(merged, e)
	}
	ba := make([]byte, 4<<20)
	bb := make([]byte, 4<<20)
	for _, e := range merged {
		for off := e.start; off < e.end; off += int64(len(ba)) {
			n := min(int64(len(ba)), e.end-off)
			if err := readFull(fa, ba[:n], off); err != nil {
				t.Fatal(err)
			}
			if err := readFull(fb, bb[:n], off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ba[:n], bb[:n]) {
				for i := range ba[:n] {
					if ba[i] != bb[i] {
						t.Fatalf("%s and %s differ at byte %d", filepath.Base(a), filepath.Base(b), off+int64(i))
					}
				}
			}
		}
	}
}
