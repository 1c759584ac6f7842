package qcow2

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
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
