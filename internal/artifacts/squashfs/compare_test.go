package squashfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestCompareMksquashfs is a benchmark against mksquashfs on a real root
// file system, run only when KAIROS_BENCH_ROOTFS names one:
//
//	KAIROS_BENCH_ROOTFS=/tmp/bench-rootfs go test -run TestCompareMksquashfs -v ./internal/artifacts/squashfs/
//
// KAIROS_BENCH_COMPRESSORS selects compressors (default "gzip,zstd"),
// KAIROS_BENCH_LEVEL our compression level (default: the default). Both
// writers use all CPUs, 1 MiB blocks and each compressor's default level
// (mksquashfs: gzip 9, zstd 15, xz's; ours: gzip 7, zstd 15, see
// Options.Level). It logs time and size ratios
// (ours / mksquashfs; the targets: time <= 0.5 with gzip, <= 0.8
// with zstd, size <= 1.02) and fails only on errors, including the two
// images listing different trees.
func TestCompareMksquashfs(t *testing.T) {
	src := os.Getenv("KAIROS_BENCH_ROOTFS")
	if src == "" {
		t.Skip("set KAIROS_BENCH_ROOTFS=<directory> to compare with mksquashfs")
	}
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Fatalf("mksquashfs not found: %v", err)
	}
	comps := strings.Split(os.Getenv("KAIROS_BENCH_COMPRESSORS"), ",")
	if comps[0] == "" {
		comps = []string{"gzip", "zstd"}
	}
	targets := map[string]float64{"gzip": 0.5, "zstd": 0.8}
	level := 0
	if v := os.Getenv("KAIROS_BENCH_LEVEL"); v != "" {
		if _, err := fmt.Sscan(v, &level); err != nil {
			t.Fatalf("KAIROS_BENCH_LEVEL=%q: %v", v, err)
		}
	}
	dir := t.TempDir()
	n := runtime.NumCPU()
	for _, comp := range comps {
		ours := filepath.Join(dir, "ours-"+comp+".sqfs")
		ref := filepath.Join(dir, "mksquashfs-"+comp+".sqfs")

		start := time.Now()
		root, err := DirSource(src)
		if err != nil {
			t.Fatal(err)
		}
		st, err := WriteFile(ours, root, Options{Compression: comp, Level: level, Workers: n})
		if err != nil {
			t.Fatal(err)
		}
		oursTime := time.Since(start)

		start = time.Now()
		cmd := exec.Command("mksquashfs", src, ref, "-comp", comp, "-b", "1M", "-noappend",
			"-processors", fmt.Sprint(n), "-no-progress", "-quiet")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mksquashfs: %v\n%s", err, out)
		}
		refTime := time.Since(start)

		oursInfo, _ := os.Stat(ours)
		refInfo, _ := os.Stat(ref)
		target := "n/a"
		if v, ok := targets[comp]; ok {
			target = fmt.Sprintf("<= %.1f", v)
		}
		t.Logf("%s: ours %.1fs %d bytes (%d files, %d duplicates, %d sparse blocks), mksquashfs %.1fs %d bytes; time ratio %.2f (target %s), size ratio %.3f (target <= 1.02)",
			comp, oursTime.Seconds(), oursInfo.Size(), st.Files, st.DuplicateFiles, st.SparseBlocks,
			refTime.Seconds(), refInfo.Size(), oursTime.Seconds()/refTime.Seconds(), target,
			float64(oursInfo.Size())/float64(refInfo.Size()))

		// Same tree in both images, as unsquashfs lists them.
		got := parseListing(t, run(t, "unsquashfs", "-n", "-lln", "-UTC", ours))
		want := parseListing(t, run(t, "unsquashfs", "-n", "-lln", "-UTC", ref))
		compareListings(t, got, want)
		os.Remove(ours)
		os.Remove(ref)
	}
}
