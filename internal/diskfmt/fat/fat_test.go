package fat

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/fat/fattest"
	"github.com/kairos-io/kairos/internal/fstree"
)

// espTree is an EFI System Partition with everything that stresses the
// format: a multi-cluster binary, 8.3 and long names, colliding long names
// (one against a file literally named like its generated alias), non-ASCII,
// names of exactly one and two LFN entries, a 200-character name, a deep
// path, an empty file and directory, and a directory of 300 long-named
// files that spans many clusters.
func espTree(t *testing.T, bootSize int) (*fstree.Node, map[string][]byte) {
	t.Helper()
	files := map[string][]byte{
		"EFI/BOOT/BOOTX64.EFI":                           randomBytes(1, bootSize),
		"EFI/BOOT/grub.cfg":                              []byte("search --no-floppy --label COS_STATE --set root\nconfigfile ($root)/grub2/grub.cfg\n"),
		"EFI/BOOT/mmx64.efi":                             randomBytes(2, 10<<10),
		"EFI/kairos/grub.cfg":                            []byte("set timeout=5\n"),
		"Long File Name One.txt":                         []byte("one"),
		"Long File Name Two.txt":                         []byte("two"),
		"LONGFI~1.TXT":                                   []byte("literal alias"),
		"café.txt":                                       []byte("non-ASCII"),
		"thirteen_char":                                  []byte("13 UTF-16 units: one LFN entry, no terminator"),
		"twenty-six-characters.abcd":                     []byte("two LFN entries exactly"),
		strings.Repeat("x", 196) + ".txt":                []byte("a 200-character name"),
		"a/b/c/d/e/f/g/h/i/j/k/l/deeply nested file.txt": []byte("deep"),
		"emptyfile":                                      nil,
	}
	for i := range 300 {
		files[fmt.Sprintf("many/config-file-number-%03d.yaml", i)] = fmt.Appendf(nil, "id: %d\n", i)
	}
	root := fstree.Dir(0o755, 0)
	for p, data := range files {
		if err := root.Add(p, fstree.File(data, 0o644, 0), 0o755, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.Mkdir("empty dir", 0o755, 0); err != nil {
		t.Fatal(err)
	}
	return root, files
}

func TestESPWithReferenceTools(t *testing.T) {
	needTool(t, "fsck.vfat", "mdir", "mcopy", "minfo", "fatlabel")
	for _, tc := range []struct {
		name        string
		size        int64
		bootSize    int
		fatType     string
		clusterSize int
	}{
		// The ISO's El Torito EFI image is a few MiB: FAT16.
		{"4MiB", 4 << 20, 1536 << 10, "FAT16", 512},
		// The contract's COS_GRUB ESP.
		{"64MiB", 64 << 20, 3 << 20, "FAT32", 512},
		{"300MiB", 300 << 20, 5 << 20, "FAT32", 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, files := espTree(t, tc.bootSize)
			img := filepath.Join(t.TempDir(), "esp.img")
			writeImage(t, img, tc.size, "cos_grub", root, Options{ModTime: sourceDateEpoch})

			report := fsckClean(t, img)
			if !strings.Contains(report, fmt.Sprintf("%d bytes per cluster", tc.clusterSize)) {
				t.Errorf("fsck.vfat: want %d-byte clusters:\n%s", tc.clusterSize, report)
			}

			// mdir lists the tree, mcopy extracts every file.
			if err := fattest.Verify(img, root); err != nil {
				t.Fatal(err)
			}
			// mdir shows the generated 8.3 aliases next to the long names.
			dirList := run(t, "mdir", "-i", img, "::/")
			for _, alias := range []string{
				`LONGFI~1 TXT\s+13 2023-11-14\s+22:13\s*\n`,
				`LONGFI~2 TXT\s+3 2023-11-14\s+22:13\s+Long File Name One.txt`,
				`LONGFI~3 TXT\s+3 2023-11-14\s+22:13\s+Long File Name Two.txt`,
				`CAF_~1\s+TXT\s+9 2023-11-14\s+22:13\s+café.txt`,
				`EMPTYD~1\s+<DIR>\s+2023-11-14\s+22:13\s+empty dir`,
			} {
				if !regexp.MustCompile(alias).MatchString(dirList) {
					t.Errorf("mdir ::/ does not match %q:\n%s", alias, dirList)
				}
			}
			if boot := run(t, "mdir", "-i", img, "::/EFI/BOOT"); !regexp.MustCompile(
				fmt.Sprintf(`BOOTX64\s+EFI\s+%d 2023-11-14\s+22:13\s*\n`, tc.bootSize)).MatchString(boot) {
				t.Errorf("BOOTX64.EFI must be a plain 8.3 entry without long name:\n%s", boot)
			}

			got := run(t, "mcopy", "-i", img, "::/EFI/BOOT/BOOTX64.EFI", "-")
			if got != string(files["EFI/BOOT/BOOTX64.EFI"]) {
				t.Fatalf("mcopy ::/EFI/BOOT/BOOTX64.EFI: %d bytes differ from the source", len(got))
			}

			info := run(t, "minfo", "-i", img, "::")
			for _, want := range []string{
				fmt.Sprintf(`disk type="%-8s"`, tc.fatType),
				`disk label="COS_GRUB   "`,
				"serial number: 76CF2E43", // CRC-32 of "COS_GRUB"
				"media descriptor byte: 0xf8",
				"fats: 2",
			} {
				if !strings.Contains(info, want) {
					t.Errorf("minfo: missing %q:\n%s", want, info)
				}
			}
			if tc.fatType == "FAT32" {
				for _, want := range []string{"backup boot sector=6", "infoSector location=1", "signature=0x41615252", "rootCluster=2"} {
					if !strings.Contains(info, want) {
						t.Errorf("minfo: missing %q:\n%s", want, info)
					}
				}
			}
			if label := strings.TrimSpace(run(t, "fatlabel", img)); label != "COS_GRUB" {
				t.Errorf("fatlabel: %q, want COS_GRUB", label)
			}
		})
	}
}

// The same tree gives the same bytes, however it was assembled.
func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	sum := func(name string, root *fstree.Node) [32]byte {
		img := filepath.Join(dir, name)
		writeImage(t, img, 64<<20, "COS_GRUB", root, Options{ModTime: sourceDateEpoch})
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	a, _ := espTree(t, 1<<20)
	b, _ := espTree(t, 1<<20) // built from a map: another insertion order
	slices.Reverse(b.Children)
	if sum("a.img", a) != sum("b.img", b) {
		t.Fatal("two writes of the same tree differ")
	}
}

func TestTimestamps(t *testing.T) {
	needTool(t, "mdir")
	for _, tc := range []struct {
		mod  time.Time
		want string
	}{
		{time.Time{}, "1980-01-01   0:00"},
		{time.Unix(0, 0), "1980-01-01   0:00"}, // SOURCE_DATE_EPOCH=0 clamps to the DOS epoch
		{time.Date(2024, 2, 29, 13, 37, 59, 0, time.FixedZone("CET", 3600)), "2024-02-29  12:37"},
	} {
		img := filepath.Join(t.TempDir(), "t.img")
		root := fstree.Dir(0o755, 0)
		_ = root.Add("f.txt", fstree.File([]byte("x"), 0o644, 0), 0o755, 0)
		writeImage(t, img, 4<<20, "", root, Options{ModTime: tc.mod})
		if out := run(t, "mdir", "-i", img, "::/"); !strings.Contains(out, tc.want) {
			t.Errorf("ModTime %v: mdir does not show %q:\n%s", tc.mod, tc.want, out)
		}
	}
}

// Variant and cluster size follow the size, and every choice is a valid
// file system.
func TestGeometry(t *testing.T) {
	needTool(t, "fsck.vfat", "minfo")
	for _, tc := range []struct {
		size    int64
		opt     Options
		fatType string
		cluster int
	}{
		{2200 << 10, Options{}, "FAT16", 512}, // near the FAT16 minimum
		{15 << 20, Options{}, "FAT16", 1024},
		{16 << 20, Options{}, "FAT16", 2048},
		{32 << 20, Options{}, "FAT16", 2048}, // too small for FAT32's 65525 clusters
		{34 << 20, Options{}, "FAT32", 512},  // just enough for them
		{64 << 20, Options{FATType: FAT16}, "FAT16", 2048},
		{64 << 20, Options{ClusterSize: 4096, FATType: FAT16}, "FAT16", 4096},
		{1 << 30, Options{}, "FAT32", 4096},
		{3<<20 + 7*512, Options{}, "FAT16", 512}, // not a multiple of the track size
	} {
		img := filepath.Join(t.TempDir(), "g.img")
		root := fstree.Dir(0o755, 0)
		_ = root.Add("EFI/BOOT/BOOTX64.EFI", fstree.File(randomBytes(3, 5000), 0o644, 0), 0o755, 0)
		writeImage(t, img, tc.size, "GEOM", root, tc.opt)
		report := fsckClean(t, img)
		info := run(t, "minfo", "-i", img, "::")
		if !strings.Contains(info, fmt.Sprintf(`disk type="%-8s"`, tc.fatType)) ||
			!strings.Contains(report, fmt.Sprintf("%d bytes per cluster", tc.cluster)) {
			t.Errorf("size %d %+v: want %s with %d-byte clusters:\n%s\n%s", tc.size, tc.opt, tc.fatType, tc.cluster, info, report)
		}
	}
}

func TestTooSmall(t *testing.T) {
	root := fstree.Dir(0o755, 0)
	_ = root.Add("EFI/BOOT/BOOTX64.EFI", fstree.File(make([]byte, 5<<20), 0o644, 0), 0o755, 0)
	err := Write(discard{}, 4<<20, "COS_GRUB", root, Options{})
	// 5 MiB of file plus the EFI and BOOT directories; the FAT16 root has its own region.
	want := "fat: tree does not fit: it needs 5.00 MiB (10242 clusters of 512 bytes), the 4 MiB FAT16 file system has 3.95 MiB (8095 clusters)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}

	err = Write(discard{}, 1<<20, "", nil, Options{})
	if err == nil || !strings.Contains(err.Error(), "minimum FAT16 size is 2075 KiB") {
		t.Errorf("1 MiB: error %v", err)
	}
	err = Write(discard{}, 16<<20, "", nil, Options{FATType: FAT32})
	if err == nil || !strings.Contains(err.Error(), "FAT32 needs 65525") {
		t.Errorf("forced FAT32 on 16 MiB: error %v", err)
	}
}

func TestErrors(t *testing.T) {
	many := fstree.Dir(0o755, 0)
	for i := range 600 {
		_ = many.Add(fmt.Sprintf("F%d", i), fstree.File(nil, 0o644, 0), 0o755, 0)
	}
	dir := func(children ...*fstree.Node) *fstree.Node {
		d := fstree.Dir(0o755, 0)
		d.Children = children
		return d
	}
	for _, tc := range []struct {
		name  string
		label string
		root  *fstree.Node
		want  string
	}{
		{"colon", "", dir(&fstree.Node{Name: "a:b"}), `contains ':'`},
		{"trailing dot", "", dir(&fstree.Node{Name: "name."}), "ends with a dot"},
		{"case duplicates", "", dir(&fstree.Node{Name: "Grub.cfg"}, &fstree.Node{Name: "GRUB.CFG"}), "case-insensitive"},
		{"neither file nor dir", "", dir(&fstree.Node{Name: "x", Mode: fs.ModeSymlink, Target: "y"}), "not a regular file or directory"},
		{"FAT16 root full", "", many, "the FAT16 root holds 512"},
		{"long label", "TOO LONG LABEL", nil, "at most 11 characters"},
		{"label dot", "A.B", nil, `'.' is not allowed`},
		{"short content", "", dir(&fstree.Node{Name: "f", Size: 10, Open: opener("12345")}), "ends before its declared size of 10"},
		{"long content", "", dir(&fstree.Node{Name: "f", Size: 3, Open: opener("12345")}), "longer than its declared size of 3"},
	} {
		err := Write(&memImage{}, 4<<20, tc.label, tc.root, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	root := fstree.Dir(0o755, 0)
	_ = root.Add("a/b", fstree.File(nil, 0o644, 0), 0o755, 0)
	if err := root.Add("a/b/c", fstree.File(nil, 0o644, 0), 0o755, 0); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file as directory: error %v", err)
	}
	// fstree names are case-sensitive, FAT's are not: Write refuses what
	// fstree keeps apart.
	_ = root.Add("A/B", fstree.File(nil, 0o644, 0), 0o755, 0)
	if err := Write(&memImage{}, 4<<20, "", root, Options{}); err == nil || !strings.Contains(err.Error(), "case-insensitive") {
		t.Errorf("existing file: error %v", err)
	}
}

// TestDirSource writes a staging directory read by fstree.DirSource.
func TestDirSource(t *testing.T) {
	needTool(t, "fsck.vfat", "mcopy")
	src := t.TempDir()
	files := map[string][]byte{
		"EFI/BOOT/BOOTX64.EFI": randomBytes(4, 70000),
		"EFI/BOOT/grub.cfg":    []byte("configfile /grub.cfg\n"),
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(src, "loader/entries"), 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := fstree.DirSource(src)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "fromfs.img")
	writeImage(t, img, 8<<20, "EFI", root, Options{})
	if err := fattest.Verify(img, root); err != nil {
		t.Fatal(err)
	}
	if got, err := fattest.List(img); err != nil || !slices.Contains(got, "::/loader/entries/") {
		t.Errorf("mdir lists %v (%v), want ::/loader/entries/ in it", got, err)
	}

	if err := os.Symlink("EFI", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if root, err = fstree.DirSource(src); err != nil {
		t.Fatal(err)
	}
	if err := Write(&memImage{}, 8<<20, "EFI", root, Options{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("symlink: error %v", err)
	}
}

func opener(s string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// memImage is an in-memory io.WriterAt.
type memImage struct{ b []byte }

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}
