// Package host describes the node the agent runs on: the files it reads
// and writes, the kernel command line and the tools it runs. Commands take
// their paths from a Host rather than from literals, so that a test can
// build one rooted in a temporary directory (New) and replace the tools,
// as Ignition's distro package does for its paths and binaries.
package host

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/release"
)

// Host is the node's file system layout and tools. Every path is the one
// to open: on the real system the node's own path, on a test host that
// path under the test's root.
type Host struct {
	// Root is what the node's absolute paths are relative to ("/" on a
	// node); cloud-config and stage loading take it.
	Root string

	Cmdline       string // the kernel command line, /proc/cmdline
	Mounts        string // /proc/self/mounts
	Proc          string // /proc (routes, addresses: /proc/net)
	Sys           string // /sys
	Dev           string // /dev
	ByLabel       string // udev's /dev/disk/by-label
	ConsoleActive string // the active system consoles, /sys/class/tty/console/active
	SystemdRun    string // /run/systemd/system, present when systemd is PID 1

	RunCos        string // the boot-mode sentinels (<mode>_mode files the mounter writes), /run/cos
	OEM           string // COS_OEM, /oem
	StateDir      string // where the initramfs mounts COS_STATE, /run/initramfs/cos-state
	UsrLocal      string // COS_PERSISTENT, /usr/local
	Release       string // /etc/kairos-release
	DatasourceDir string // configs fetched at boot, /run/kairos/datasource
	// LockFile is the lock install, upgrade and reset take,
	// /run/kairos/agent.lock: in /run (memory), not on COS_STATE, as an
	// install has no COS_STATE yet and a lock that outlived a reboot would
	// need cleaning up; not in /run/lock, which every user may write (a
	// user's file there would hold the lock, or be a link root opens).
	LockFile    string
	Deployed    string // start's sentinel (remove it to deploy again), /usr/local/.kairos/deployed
	Spool       string // pulled images are spooled here, /usr/local/.kairos/tmp
	NodeWorkDir string // upgrade and reset mount partitions here, /run/kairos/node
	InstallWork string // install's work directory, /run/kairos/install
	LiveRoot    string // the live medium's root file system, /run/rootfsbase
	Sysroot     string // where the initramfs assembles the root, /sysroot
	Run         string // /run, shared by the initramfs and the booted system

	// Getenv reads the agent's environment (TMPDIR); os.Getenv by default.
	Getenv func(string) string
	// Command runs a tool (reboot, poweroff, systemctl, rc-update,
	// rc-service) and returns its combined output; tests record the calls
	// instead of rebooting the machine they run on.
	Command func(name string, args ...string) ([]byte, error)

	once    sync.Once
	cmdline string
	err     error
}

// System is the host the agent runs on.
var System = New("/")

// New describes a node whose file system is rooted at root: "/" for the
// real one, a temporary directory in tests. Its tools are the real ones;
// tests replace Command.
func New(root string) *Host {
	in := func(p string) string { return filepath.Join(root, p) }
	return &Host{
		Root:          root,
		Cmdline:       in("/proc/cmdline"),
		Mounts:        in("/proc/self/mounts"),
		Proc:          in("/proc"),
		Sys:           in("/sys"),
		Dev:           in("/dev"),
		ByLabel:       in("/dev/disk/by-label"),
		ConsoleActive: in("/sys/class/tty/console/active"),
		SystemdRun:    in("/run/systemd/system"),
		RunCos:        in("/run/cos"),
		OEM:           in("/oem"),
		StateDir:      in("/run/initramfs/cos-state"),
		UsrLocal:      in("/usr/local"),
		Release:       in(release.Path),
		DatasourceDir: in(cloudconfig.DatasourceDir),
		LockFile:      in("/run/kairos/agent.lock"),
		Deployed:      in("/usr/local/.kairos/deployed"),
		Spool:         in("/usr/local/.kairos/tmp"),
		NodeWorkDir:   in("/run/kairos/node"),
		InstallWork:   in("/run/kairos/install"),
		LiveRoot:      in("/run/rootfsbase"),
		Sysroot:       in("/sysroot"),
		Run:           in("/run"),
		Getenv:        os.Getenv,
		Command:       runTool,
	}
}

func runTool(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// KernelCmdline is the kernel command line, read once: it cannot change
// while the system runs, and each command consults it several times.
func (h *Host) KernelCmdline() (string, error) {
	h.once.Do(func() {
		data, err := os.ReadFile(h.Cmdline)
		if err != nil {
			h.err = fmt.Errorf("reading the kernel command line: %w", err)
			return
		}
		h.cmdline = string(data)
	})
	return h.cmdline, h.err
}

// HasArg says whether the kernel command line has the token arg (exactly:
// install-mode, kairos.reset); an unreadable command line has none.
func HasArg(cmdline, arg string) bool {
	return slices.Contains(strings.Fields(cmdline), arg)
}
