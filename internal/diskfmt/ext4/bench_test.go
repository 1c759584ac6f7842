package ext4

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/fstree"
)

// BenchmarkWrite writes the directory KAIROS_BENCH_ROOTFS (default
// /usr/share/doc) and reports, besides the time per image, how that time
// compares with `mke2fs -t ext4 -d` building the same directory into a file
// system of the same size (x-mke2fs below 1 means faster than mke2fs):
//
//	KAIROS_BENCH_ROOTFS=/path/to/rootfs go test -run - -bench Write ./internal/artifacts/ext4/
func BenchmarkWrite(b *testing.B) {
	src := os.Getenv("KAIROS_BENCH_ROOTFS")
	if src == "" {
		src = "/usr/share/doc"
	}
	if _, err := exec.LookPath("mke2fs"); err != nil {
		b.Fatalf("mke2fs not installed (e2fsprogs): %v", err)
	}
	root, err := fstree.DirSource(src)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	img := filepath.Join(dir, "fs.img")
	opt := Options{Label: "BENCH", Headroom: 64 << 20}
	st, err := WriteFile(img, root, opt)
	if err != nil {
		b.Fatal(err)
	}

	ref := filepath.Join(dir, "ref.img")
	start := time.Now()
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", src, ref,
		strconv.FormatUint(st.Blocks, 10)).CombinedOutput(); err != nil {
		b.Fatalf("mke2fs: %v\n%s", err, out)
	}
	mke2fs := time.Since(start)
	os.Remove(ref)

	b.SetBytes(st.Size - int64(st.FreeBlocks)*blockSize)
	b.ResetTimer()
	for range b.N {
		if _, err := WriteFile(img, root, opt); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(mke2fs), "x-mke2fs")
}
