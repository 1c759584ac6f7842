package fat

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// sourceDateEpoch is the timestamp the tests build with: 2023-11-14 22:13:20 UTC.
var sourceDateEpoch = time.Unix(1700000000, 0)

func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s not installed: ./earthly.sh +test installs the reference tools (see APT_PACKAGES)", name)
		}
	}
}

// tool runs a reference tool in a UTF-8 locale (mtools converts long names
// to the locale's charset) without user mtools configuration.
func tool(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MTOOLSRC=/dev/null")
	return cmd
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := tool(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// writeImage writes a file system onto a new sparse file of size bytes.
func writeImage(t *testing.T, path string, size int64, label string, root *Dir, opt Options) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := Write(f, size, label, root, opt); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// fsckClean runs `fsck.vfat -n` (check only) and requires that it found
// nothing to fix. It returns the verbose report.
func fsckClean(t *testing.T, img string) string {
	t.Helper()
	out, err := tool("fsck.vfat", "-n", "-v", img).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.vfat -n: %v\n%s", err, out)
	}
	for _, bad := range []string{"unchanged", "differ", "wrong", "Wrong", "Orphan", "Truncat", "Fixing", "Bad", "invalid", "Warning"} {
		if strings.Contains(string(out), bad) {
			t.Fatalf("fsck.vfat -n reports a problem (%q):\n%s", bad, out)
		}
	}
	return string(out)
}

// listing is the tree as `mdir -/ -b` prints it: one full path per entry,
// directories with a trailing slash, sorted.
func listing(t *testing.T, img string) []string {
	t.Helper()
	var paths []string
	for _, l := range strings.Split(strings.TrimSpace(run(t, "mdir", "-i", img, "-/", "-b", "::")), "\n") {
		if l != "" {
			paths = append(paths, l)
		}
	}
	sort.Strings(paths)
	return paths
}

// expectedListing is what listing must return for a tree.
func expectedListing(d *Dir) []string {
	var paths []string
	var walk func(d *Dir, prefix string)
	walk = func(d *Dir, prefix string) {
		for _, e := range d.Entries {
			p := prefix + "/" + e.Name
			if e.Dir != nil {
				paths = append(paths, "::"+p+"/")
				walk(e.Dir, p)
			} else {
				paths = append(paths, "::"+p)
			}
		}
	}
	walk(d, "")
	sort.Strings(paths)
	return paths
}

// extractAll copies the whole image out with mcopy and compares every file
// with its source content.
func extractAll(t *testing.T, img string, files map[string][]byte) {
	t.Helper()
	out := t.TempDir()
	run(t, "mcopy", "-s", "-n", "-i", img, "::/", out+"/")
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(p)))
		if err != nil {
			t.Fatalf("mcopy did not extract %s: %v", p, err)
		}
		if string(got) != string(want) {
			t.Fatalf("%s: extracted %d bytes differ from the %d source bytes", p, len(got), len(want))
		}
	}
}
