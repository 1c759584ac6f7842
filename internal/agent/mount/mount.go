// Package mount is the boot-time mounter that runs in the initramfs (the
// upstream "immucore" role). Live and netboot media are assembled by dracut's
// dmsquash-live; for them the mounter only records the boot mode. Installed
// systems are assembled in two steps: Loop before the root is mounted, and
// Sysroot after (see installed.go for the layout).
package mount

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kairos-io/kairos/internal/agent/state"
)

// Options are the mounter's inputs.
type Options struct {
	Cmdline string // content of /proc/cmdline
	Sysroot string // where the new root is assembled, /sysroot in dracut
	RunDir  string // /run, shared with the booted system
}

// Run assembles the root for the boot mode the command line asks for.
func Run(o Options) error {
	mode := state.DetectBootMode(o.Cmdline)
	switch mode {
	case state.LiveCDBoot:
		return writeSentinel(o.RunDir, mode)
	case state.UnknownBoot:
		return fmt.Errorf("kernel command line names no Kairos boot (want rd.cos.disable, or root=LABEL=COS_ACTIVE|COS_PASSIVE|COS_SYSTEM): %q", o.Cmdline)
	default:
		return Sysroot(o.Cmdline, o.Sysroot, o.RunDir, os.Stderr)
	}
}

func writeSentinel(runDir string, mode state.BootMode) error {
	dir := filepath.Join(runDir, "cos")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	p := filepath.Join(dir, mode.Sentinel())
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}
