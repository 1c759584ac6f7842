package host_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/release"
)

// The real host's paths are the node's (the contract's), and agree with
// the constants of the packages that own a name (release, cloudconfig).
func TestSystemPaths(t *testing.T) {
	h := host.System
	for _, c := range []struct{ got, want string }{
		{h.Root, "/"},
		{h.Cmdline, "/proc/cmdline"},
		{h.Mounts, "/proc/self/mounts"},
		{h.Sys, "/sys"},
		{h.Dev, "/dev"},
		{h.ByLabel, "/dev/disk/by-label"},
		{h.ConsoleActive, "/sys/class/tty/console/active"},
		{h.SystemdRun, "/run/systemd/system"},
		{h.RunCos, "/run/cos"},
		{h.OEM, "/oem"},
		{h.StateDir, "/run/initramfs/cos-state"},
		{h.UsrLocal, "/usr/local"},
		{h.Release, release.Path},
		{h.DatasourceDir, cloudconfig.DatasourceDir},
		{h.LockFile, "/run/kairos/agent.lock"},
		{h.Deployed, "/usr/local/.kairos/deployed"},
		{h.Spool, "/usr/local/.kairos/tmp"},
		{h.NodeWorkDir, "/run/kairos/node"},
		{h.InstallWork, "/run/kairos/install"},
		{h.LiveRoot, "/run/rootfsbase"},
		{h.Sysroot, "/sysroot"},
		{h.Run, "/run"},
	} {
		if c.got != c.want {
			t.Errorf("system host path %q, want %q", c.got, c.want)
		}
	}
}

// A test host has every path under its root.
func TestNewRooted(t *testing.T) {
	root := t.TempDir()
	h := host.New(root)
	for _, p := range []string{h.Cmdline, h.Mounts, h.ByLabel, h.RunCos, h.OEM, h.StateDir, h.UsrLocal, h.Release, h.DatasourceDir, h.LockFile, h.Spool} {
		if !strings.HasPrefix(p, root+"/") {
			t.Errorf("%s is outside the test root %s", p, root)
		}
	}
	if h.Getenv == nil || h.Command == nil {
		t.Error("a new host has no environment or tools")
	}
}

// The kernel command line is read once: later changes to the file (none
// happen on a running kernel) are not seen, and each call agrees.
func TestKernelCmdlineCached(t *testing.T) {
	h := host.New(t.TempDir())
	write := func(s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(h.Cmdline), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.Cmdline, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("root=LABEL=COS_ACTIVE quiet\n")
	for i := 0; i < 2; i++ {
		got, err := h.KernelCmdline()
		if err != nil || got != "root=LABEL=COS_ACTIVE quiet\n" {
			t.Fatalf("read %d: %q, %v", i, got, err)
		}
		write("changed")
	}
}

func TestKernelCmdlineMissing(t *testing.T) {
	h := host.New(t.TempDir())
	_, err := h.KernelCmdline()
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "kernel command line") {
		t.Errorf("missing command line: %v", err)
	}
}

func TestHasArg(t *testing.T) {
	for _, c := range []struct {
		cmdline, arg string
		want         bool
	}{
		{"root=live:CDLABEL=x install-mode quiet", "install-mode", true},
		{"root=live:CDLABEL=x install-mode\n", "install-mode", true},
		{"root=live:CDLABEL=x install-mode=1", "install-mode", false},
		{"root=live:CDLABEL=x noinstall-mode", "install-mode", false},
		{"kairos.reset", "kairos.reset", true},
		{"", "kairos.reset", false},
	} {
		if got := host.HasArg(c.cmdline, c.arg); got != c.want {
			t.Errorf("HasArg(%q, %q) = %v", c.cmdline, c.arg, got)
		}
	}
}
