package fat

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/fat/fattest"
	"github.com/kairos-io/kairos/internal/fstree"
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

// run runs a reference tool (fattest.Run: UTF-8 locale, no user mtools
// configuration) and returns its output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := fattest.Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeImage writes a file system onto a new sparse file of size bytes.
func writeImage(t *testing.T, path string, size int64, label string, root *fstree.Node, opt Options) {
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

// fsckClean runs fattest.Fsck and returns its report.
func fsckClean(t *testing.T, img string) string {
	t.Helper()
	report, err := fattest.Fsck(img)
	if err != nil {
		t.Fatal(err)
	}
	return report
}
