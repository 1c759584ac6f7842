package qcow2

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// benchWrites is a disk image shaped like a freshly built one: a few data
// regions (partition tables, file systems) with zeros in between, plus runs of
// written zeros that must be detected as such.
func benchWrites(size, data int64) []write {
	const pieces = 16
	var writes []write
	chunk := data / pieces
	for i := int64(0); i < pieces; i++ {
		off := i * (size / pieces)
		writes = append(writes, write{off, randomBytes(uint64(1000+i), int(chunk))})
		writes = append(writes, write{off + chunk, make([]byte, chunk/4)})
	}
	return writes
}

// BenchmarkConvert converts a 1 GiB sparse disk holding 64 MiB of data to a
// file. Bytes/s count the data actually stored.
func BenchmarkConvert(b *testing.B) {
	const size, data = 1 << 30, 64 << 20
	dir := b.TempDir()
	raw := filepath.Join(dir, "bench.raw")
	makeRaw(b, raw, size, benchWrites(size, data))
	out := filepath.Join(dir, "bench.qcow2")
	b.SetBytes(data)
	b.ResetTimer()
	for b.Loop() {
		convertFile(b, raw, out, Options{})
	}
}

// BenchmarkVersusQemuImg times Convert against `qemu-img convert -O qcow2`
// on the same sparse 3 GiB disk with 256 MiB of data, both flushed to disk,
// and reports the ratio (go test -bench VersusQemuImg).
func BenchmarkVersusQemuImg(b *testing.B) {
	t := b
	needTool(t, "qemu-img")
	const size, data = 3 << 30, 256 << 20
	dir := t.TempDir()
	raw := filepath.Join(dir, "bench.raw")
	makeRaw(t, raw, size, benchWrites(size, data))

	ours := filepath.Join(dir, "ours.qcow2")
	theirs := filepath.Join(dir, "qemu.qcow2")
	best := func(f func()) time.Duration {
		d := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			f()
			d = min(d, time.Since(start))
		}
		return d
	}
	dOurs := best(func() {
		convertFile(t, raw, ours, Options{})
		syncFile(t, ours)
	})
	dQemu := best(func() {
		_ = os.Remove(theirs)
		run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, theirs)
		syncFile(t, theirs)
	})
	so, _ := os.Stat(ours)
	sq, _ := os.Stat(theirs)
	t.Logf("3 GiB sparse raw, 256 MiB data: ours %v (%d MiB), qemu-img %v (%d MiB), qemu-img/ours = %.2f",
		dOurs.Round(time.Millisecond), so.Size()>>20, dQemu.Round(time.Millisecond), sq.Size()>>20,
		float64(dQemu)/float64(dOurs))
	b.ReportMetric(float64(dOurs)/float64(dQemu), "time-ratio")
	if out, err := exec.Command("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", ours, theirs).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare: %v\n%s", err, out)
	}
}

func syncFile(t testing.TB, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}
