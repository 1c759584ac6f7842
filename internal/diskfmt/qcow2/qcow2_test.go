package qcow2

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/diskfmt/qcow2/qcow2test"
)

// checkWithQemu judges an image with the reference tool (qcow2test.Verify:
// qemu-img check finds no errors and no leaks, compare reads the source
// back), and that qemu-img info reports the virtual and cluster size and
// the format's options, and qemu-img map exactly the expected clusters
// as data.
func checkWithQemu(t *testing.T, raw, img string, size, cs int64, want map[int64]bool) {
	t.Helper()
	if err := qcow2test.Verify(img, raw); err != nil {
		t.Fatal(err)
	}
	info, err := qcow2test.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.VirtualSize != size || info.ClusterSize != cs ||
		info.Specific.Data.Compat != "1.1" || info.Specific.Data.RefcountBits != 16 || info.Specific.Data.Corrupt {
		t.Fatalf("qemu-img info: unexpected %+v", info)
	}
	got, err := qcow2test.DataClusters(img, cs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("qemu-img map: %d data clusters, want %d", len(got), len(want))
	}
	for c := range want {
		if !got[c] {
			t.Fatalf("qemu-img map: cluster %d (offset %d) not stored", c, c*cs)
		}
	}
}

func TestConvertSparse3GiB(t *testing.T) {
	needTool(t, "qemu-img")
	const size = 3 << 30
	const cs = DefaultClusterSize
	mixed := append(make([]byte, 128<<10), randomBytes(7, 128<<10)...)
	writes := []write{
		{0, randomBytes(1, 4096)},                         // boot sector area
		{1<<20 + 123, randomBytes(2, 200<<10)},            // unaligned, spans clusters
		{512<<20 - 1000, randomBytes(3, 3000)},            // spans an L2 table boundary
		{1 << 30, make([]byte, 1<<20)},                    // written zeros: data, not stored
		{1<<30 + 2<<20, randomBytes(4, cs)},               // exactly one aligned cluster
		{2<<30 + 5<<20 + 7, mixed},                        // zero clusters inside a data region
		{size - 512, bytes.Repeat([]byte{0xAB}, 512)},     // last sector
		{size - 3*cs - 1, []byte{1, 0, 0, 0, 0, 0, 0, 1}}, // two clusters, one byte each
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	img := filepath.Join(dir, "disk.qcow2")
	makeRaw(t, raw, size, writes)
	convertFile(t, raw, img, Options{})

	want := expectedClusters(writes, cs)
	checkWithQemu(t, raw, img, size, cs, want)

	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	// header + L1 + refcount table + refcount block + L2 tables (5 of the 6
	// 512 MiB ranges hold data) + data clusters.
	wantSize := int64(1+1+1+1+5+len(want)) * cs
	if fi.Size() != wantSize {
		t.Errorf("image is %d bytes, want %d (%d data clusters)", fi.Size(), wantSize, len(want))
	}
	if fi.Size() > size/1000 {
		t.Errorf("image is %d bytes: zero clusters were stored", fi.Size())
	}
	t.Logf("3 GiB raw -> %d KiB qcow2 (%d data clusters)", fi.Size()>>10, len(want))
}

func TestConvertAllZero(t *testing.T) {
	needTool(t, "qemu-img")
	const size = 256 << 20
	dir := t.TempDir()
	raw := filepath.Join(dir, "zero.raw")
	img := filepath.Join(dir, "zero.qcow2")
	// Half a hole, half written zeros: neither may be stored.
	makeRaw(t, raw, size, []write{{size / 2, make([]byte, 8<<20)}})
	convertFile(t, raw, img, Options{})
	checkWithQemu(t, raw, img, size, DefaultClusterSize, nil)
	fi, _ := os.Stat(img)
	if want := int64(4 * DefaultClusterSize); fi.Size() != want {
		t.Errorf("all-zero image is %d bytes, want %d (header, L1, refcount table and block)", fi.Size(), want)
	}
}

func TestConvertSizeNotClusterMultiple(t *testing.T) {
	needTool(t, "qemu-img")
	needTool(t, "cmp")
	const size = 70<<20 + 3*512
	writes := []write{
		{0, randomBytes(10, 1000)},
		{size - 700, randomBytes(11, 700)}, // inside the partial last cluster
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "odd.raw")
	img := filepath.Join(dir, "odd.qcow2")
	makeRaw(t, raw, size, writes)
	convertFile(t, raw, img, Options{})
	checkWithQemu(t, raw, img, size, DefaultClusterSize, expectedClusters(writes, DefaultClusterSize))

	// Small enough for a plain full comparison as well.
	back := filepath.Join(dir, "back.raw")
	run(t, "qemu-img", "convert", "-f", "qcow2", "-O", "raw", img, back)
	run(t, "cmp", raw, back)
}

// Small clusters make the image need many L2 tables, several refcount blocks
// and (at 512 bytes) a refcount table of more than one cluster.
func TestConvertSmallClusters(t *testing.T) {
	needTool(t, "qemu-img")
	for _, tc := range []struct {
		cs, size, stride, chunk int64
	}{
		{4096, 48 << 20, 1536 << 10, 300 << 10},
		{512, 12 << 20, 1280 << 10, 1 << 20},
	} {
		var writes []write
		for i := int64(0); i*tc.stride < tc.size; i++ {
			n := min(tc.chunk, tc.size-i*tc.stride)
			writes = append(writes, write{i * tc.stride, randomBytes(uint64(100+i), int(n))})
		}
		dir := t.TempDir()
		raw := filepath.Join(dir, "small.raw")
		img := filepath.Join(dir, "small.qcow2")
		makeRaw(t, raw, tc.size, writes)
		convertFile(t, raw, img, Options{ClusterSize: tc.cs})
		want := expectedClusters(writes, tc.cs)
		checkWithQemu(t, raw, img, tc.size, tc.cs, want)

		m := newClusterMap((tc.size + tc.cs - 1) / tc.cs)
		for c := range want {
			m.set(c)
		}
		l, err := newLayout(tc.size, tc.cs, m)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("cluster %d: %d L2 tables, %d refcount blocks, %d refcount table clusters",
			tc.cs, l.l2Count, l.rbCount, l.rtClusters)
		if l.l2Count < 2 || l.rbCount < 2 {
			t.Errorf("cluster %d: layout too small to exercise multi-table code: %+v", tc.cs, l)
		}
		if tc.cs == 512 && l.rtClusters < 2 {
			t.Errorf("cluster 512: refcount table has %d cluster(s), want several", l.rtClusters)
		}
	}
}

// The output depends only on the content: two runs, and a file source (holes
// skipped through SEEK_HOLE) versus an in-memory source (all of it scanned),
// give identical bytes.
func TestConvertDeterministic(t *testing.T) {
	const size = 32 << 20
	writes := []write{{3 << 20, randomBytes(20, 100<<10)}, {9<<20 + 5, make([]byte, 70<<10)}, {size - 4096, randomBytes(21, 4096)}}
	dir := t.TempDir()
	raw := filepath.Join(dir, "d.raw")
	makeRaw(t, raw, size, writes)

	a := filepath.Join(dir, "a.qcow2")
	b := filepath.Join(dir, "b.qcow2")
	convertFile(t, raw, a, Options{})
	convertFile(t, raw, b, Options{})
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Fatal("two conversions of the same file differ")
	}

	content, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	var mem bytes.Buffer
	if err := Convert(&mem, bytes.NewReader(content), size, Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(da, mem.Bytes()) {
		t.Fatal("file source and in-memory source give different images")
	}
}

func TestConvertErrors(t *testing.T) {
	src := bytes.NewReader(make([]byte, 4096))
	for _, tc := range []struct {
		name string
		size int64
		opt  Options
		want string
	}{
		{"size not sector multiple", 1000, Options{}, "multiple of 512"},
		{"zero size", 0, Options{}, "multiple of 512"},
		{"cluster size", 4096, Options{ClusterSize: 3000}, "power of two"},
		{"cluster too large", 4096, Options{ClusterSize: 4 << 20}, "power of two"},
		{"short source", 8192, Options{}, "unexpected EOF"},
	} {
		err := Convert(&bytes.Buffer{}, src, tc.size, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}

	raw := filepath.Join(t.TempDir(), "short.raw")
	makeRaw(t, raw, 1<<20, nil)
	f, _ := os.Open(raw)
	defer f.Close()
	if err := Convert(&bytes.Buffer{}, f, 2<<20, Options{}); err == nil || !strings.Contains(err.Error(), "less than the virtual size") {
		t.Errorf("short file source: error %v", err)
	}
}

// The refcount structures must cover every host cluster, for any mix of
// sizes and cluster sizes, including the fixed point's corner cases.
func TestLayoutRefcountCoverage(t *testing.T) {
	for _, cs := range []int64{512, 4096, 65536, 2 << 20} {
		for _, size := range []int64{512, cs, 3 * cs, 1 << 30, 1<<30 + 512, 1 << 40} {
			if size/cs > 1<<26 {
				continue // keep the bitmap small
			}
			n := (size + cs - 1) / cs
			for _, fill := range []int64{0, 1, 2, 3} { // none, all, every other, first 1000
				m := newClusterMap(n)
				for c := int64(0); c < n; c++ {
					if fill == 1 || fill == 2 && c%2 == 0 || fill == 3 && c < 1000 {
						m.set(c)
					}
				}
				l, err := newLayout(size, cs, m)
				if err != nil {
					t.Fatalf("cs %d size %d: %v", cs, size, err)
				}
				refsPerBlock := cs / refcountBytes
				if l.rbCount*refsPerBlock < l.hostClusters() {
					t.Errorf("cs %d size %d fill %d: %d refcount blocks cannot count %d clusters", cs, size, fill, l.rbCount, l.hostClusters())
				}
				if l.rtClusters*cs/entryBytes < l.rbCount {
					t.Errorf("cs %d size %d fill %d: refcount table too small for %d blocks", cs, size, fill, l.rbCount)
				}
			}
		}
	}
}
