package ext4

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kairos-io/kairos/internal/diskfmt/ext4/ext4test"
	"github.com/kairos-io/kairos/internal/fstree"
)

// mountImage loop-mounts img (read-only unless rw) and unmounts it when
// the test ends.
func mountImage(t *testing.T, img string, rw bool) string {
	t.Helper()
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := "loop,ro"
	if rw {
		opts = "loop"
	}
	if out, err := exec.Command("mount", "-t", "ext4", "-o", opts, img, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", img, err, out)
	}
	mounted[dir] = true
	t.Cleanup(func() {
		if mounted[dir] {
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v\n%s", dir, err, out)
			}
			delete(mounted, dir)
		}
	})
	return dir
}

// mounted are the mount points of this test binary still mounted (tests
// do not run in parallel).
var mounted = map[string]bool{}

func umount(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v\n%s", dir, err, out)
	}
	delete(mounted, dir)
}

// checkWithKernel mounts img and compares what the kernel shows with the
// tree written (ext4test.VerifyDir).
func checkWithKernel(t *testing.T, img string, want *fstree.Node) {
	t.Helper()
	if err := ext4test.VerifyDir(mountImage(t, img, false), want); err != nil {
		t.Error(err)
	}
}
