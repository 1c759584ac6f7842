package mount

import (
	"fmt"
	"github.com/kairos-io/kairos/internal/agent/host"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/grubenv"
)

// FallbackEntry is the grub entry to boot when the image of mode cannot
// be attached (its partition or file is missing), in the order of
// default_fallback: active, then passive, then recovery; "" after
// recovery.
func FallbackEntry(mode state.BootMode) string {
	switch mode {
	case state.ActiveBoot:
		return "fallback"
	case state.PassiveBoot:
		return "recovery"
	}
	return ""
}

// ArmFallback makes the next boot take entry: grub's one-shot next_entry
// in the user's grubenv, COS_STATE's when it holds one (COS_OEM is
// encrypted, out of grub's reach), else COS_OEM's (the partition labelled
// b.OEMLabel).
func ArmFallback(b BootImage, entry string, log io.Writer) error {
	if done, err := armOnState(entry, log); done {
		return err
	}
	dev, err := WaitLabel(b.OEMLabel, 10*time.Second)
	if err != nil {
		return err
	}
	dir := "/run/kairos-fallback-oem"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := run(log, "mount", dev, dir); err != nil {
		return fmt.Errorf("mounting %s: %w", b.OEMLabel, err)
	}
	err = armFallbackIn(dir, entry)
	if uerr := run(log, "umount", dir); err == nil {
		err = uerr
	}
	return err
}

// armOnState arms entry in COS_STATE's grubenv; done is false when the
// partition has none (or is not there): COS_OEM's is then the one.
func armOnState(entry string, log io.Writer) (done bool, err error) {
	// Loop mounts COS_STATE read-only at StateDir (recovery boots mount
	// COS_RECOVERY there, and have no fallback to arm): that mount is
	// made writable for the write, else the partition is mounted apart.
	dir := host.System.StateDir
	if mounted(dir) {
		if err := run(log, "mount", "-o", "remount,rw", dir); err != nil {
			return false, nil
		}
		defer run(log, "mount", "-o", "remount,ro", dir)
	} else {
		dev, err := WaitLabel(stateLabel, 10*time.Second)
		if err != nil {
			return false, nil
		}
		dir = "/run/kairos-fallback-state"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, nil
		}
		if err := run(log, "mount", dev, dir); err != nil {
			return false, nil
		}
		defer run(log, "umount", dir)
	}
	if st, err := os.Stat(filepath.Join(dir, "grubenv")); err != nil || !st.Mode().IsRegular() {
		return false, nil
	}
	return true, armFallbackIn(dir, entry)
}

func armFallbackIn(oemDir, entry string) error {
	return grubenv.Update(filepath.Join(oemDir, "grubenv"), map[string]string{"next_entry": entry})
}

// Fallback is the first step of an installed boot with its way out: when
// the boot image cannot be attached, the node reboots into the next entry
// of the fallback order instead of waiting at an emergency shell nobody
// watches. The fields are the system's actions; tests replace them.
type Fallback struct {
	Loop   func(cmdline string, log io.Writer) error            // Loop
	Arm    func(b BootImage, entry string, log io.Writer) error // ArmFallback
	Reboot func() error                                         // systemctl --no-block reboot
	Log    io.Writer
}

// LoopOrFallback runs Loop; when it fails it says why on the console,
// arms the fallback entry and reboots. The error of Loop is returned
// either way, so that the unit fails and the journal keeps it.
func (f Fallback) LoopOrFallback(cmdline string) error {
	err := f.Loop(cmdline, f.Log)
	if err == nil {
		return nil
	}
	b, _ := ParseBootImage(cmdline)
	entry := FallbackEntry(b.Mode)
	if entry == "" {
		// Recovery is the last entry: there is nothing to fall back to.
		return err
	}
	fmt.Fprintf(f.Log, "kairos: %v: rebooting into the %q entry\n", err, entry)
	if aerr := f.Arm(b, entry, f.Log); aerr != nil {
		fmt.Fprintf(f.Log, "kairos: cannot set the fallback entry: %v\n", aerr)
		return err
	}
	if rerr := f.Reboot(); rerr != nil {
		fmt.Fprintf(f.Log, "kairos: reboot: %v\n", rerr)
	}
	return err
}
