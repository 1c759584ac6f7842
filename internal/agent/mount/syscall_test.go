package mount

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMountOptions(t *testing.T) {
	for _, c := range []struct {
		in    string
		flags uintptr
		data  string
	}{
		{"", 0, ""},
		{"bind", unix.MS_BIND, ""},
		{"rw,noatime", unix.MS_NOATIME, ""},
		{"ro", unix.MS_RDONLY, ""},
		{"ro,rw", 0, ""},
		{"mode=0755,size=25%", 0, "mode=0755,size=25%"},
		{"mode=1777,strictatime,nosuid,nodev,size=50%,nr_inodes=1m", unix.MS_STRICTATIME | unix.MS_NOSUID | unix.MS_NODEV, "mode=1777,size=50%,nr_inodes=1m"},
		{"lowerdir=/sysroot/etc,upperdir=/run/overlay/etc/upper,workdir=/run/overlay/etc/work", 0, "lowerdir=/sysroot/etc,upperdir=/run/overlay/etc/upper,workdir=/run/overlay/etc/work"},
	} {
		flags, data := mountOptions(c.in)
		if flags != c.flags || data != c.data {
			t.Errorf("mountOptions(%q) = %#x, %q; want %#x, %q", c.in, flags, data, c.flags, c.data)
		}
	}
}

// Every option the plans use is one mount(2) understands: a generic one
// mountOptions knows, or the file system's own (key=value).
func TestPlanOptionsKnown(t *testing.T) {
	b, _ := ParseBootImage("root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img")
	for _, s := range SysrootPlan(b, "/sysroot", Layout{}) {
		_, data := mountOptions(s.Options)
		for _, o := range strings.Split(data, ",") {
			if o != "" && !strings.Contains(o, "=") {
				t.Errorf("%s: option %q is neither a known flag nor key=value", s, o)
			}
		}
	}
}

// The steps' kinds mount for real: a tmpfs with its data options and
// flags, and a bind.
func TestMountSyscall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounting needs root: run the unit tests as root (./earthly.sh +test does)")
	}
	dir := t.TempDir()
	tmp, src, dst := filepath.Join(dir, "tmp"), filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for _, d := range []string{tmp, src, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := Syscall("tmpfs", tmp, "tmpfs", "mode=1777,strictatime,nosuid,nodev,size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(tmp, 0)
	var st unix.Statfs_t
	if err := unix.Statfs(tmp, &st); err != nil || st.Type != unix.TMPFS_MAGIC || st.Flags&unix.ST_NOSUID == 0 || st.Flags&unix.ST_NODEV == 0 {
		t.Errorf("tmpfs: type %#x flags %#x, %v", st.Type, st.Flags, err)
	}
	if fi, err := os.Stat(tmp); err != nil || fi.Mode()&os.ModePerm != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("tmpfs mode %v, %v; want 1777", fi.Mode(), err)
	}
	if err := os.WriteFile(filepath.Join(src, "seed"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Syscall(src, dst, "none", "bind"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dst, 0)
	if b, err := os.ReadFile(filepath.Join(dst, "seed")); err != nil || string(b) != "x" {
		t.Errorf("bind: %q, %v", b, err)
	}
	if err := Syscall("tmpfs", filepath.Join(dir, "missing"), "tmpfs", ""); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a missing mount point: %v", err)
	}
}

// A persistent path the image lacks on its read-only root is expected,
// not an error to report path by path.
func TestApplyAbsentOnReadOnlyRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounting needs root: run the unit tests as root (./earthly.sh +test does)")
	}
	root := t.TempDir()
	if err := Syscall("tmpfs", root, "tmpfs", "ro,size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(root, 0)
	err := apply(Step{Source: t.TempDir(), Target: filepath.Join(root, "snap"), FSType: "none", Options: "bind", Optional: true}, io.Discard)
	if !errors.Is(err, errNoMountPoint) || !errors.Is(err, errSkip) {
		t.Errorf("apply on a read-only root: %v, want errNoMountPoint", err)
	}
}
