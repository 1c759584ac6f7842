package ext4

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/ext4/ext4test"
	"github.com/kairos-io/kairos/internal/fstree"
)

// The judges are e2fsprogs (e2fsck, debugfs, dumpe2fs: the reference
// implementation of the format), GRUB's ext2 driver (grub-fstest) and the
// kernel (loop mounts). The tests fail, rather than skip, when a tool or
// root is missing, so that a missing dependency cannot hide a regression:
// ./earthly.sh +test installs the tools (APT_PACKAGES: e2fsprogs,
// grub-common) and runs as root.

// sourceDateEpoch is the time the tests build with.
var sourceDateEpoch = time.Unix(1700000000, 0)

func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s not installed (e2fsprogs, grub-common; ./earthly.sh +test installs them): %v", name, err)
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (loop mounts, mknod, chown, security.* xattrs)")
	}
	needTools(t, "mount", "umount")
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// writeImage writes root to a new file in a temporary directory.
func writeImage(t *testing.T, root *fstree.Node, opt Options) (string, Stats) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.img")
	st, err := WriteFile(img, root, opt)
	if err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	return img, st
}

// fsck fails the test unless e2fsck finds img clean from every superblock.
func fsck(t *testing.T, img string) {
	t.Helper()
	if err := ext4test.Fsck(img); err != nil {
		t.Fatal(err)
	}
}

// debugfs runs commands in one debugfs session and returns each one's
// output.
func debugfs(t *testing.T, img string, cmds ...string) []string {
	t.Helper()
	out, err := ext4test.Debugfs(img, cmds...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func parseStat(t *testing.T, s string) ext4test.Inode {
	t.Helper()
	st, err := ext4test.ParseStat(s)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// walk calls fn for every node under n (n included) with its path.
func walk(n *fstree.Node, path string, fn func(path string, n *fstree.Node)) {
	fn(path, n)
	for _, c := range n.Children {
		walk(c, strings.TrimSuffix(path, "/")+"/"+c.Name, fn)
	}
}
