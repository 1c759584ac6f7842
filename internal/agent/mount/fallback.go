package mount

import (
	"fmt"
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
// in COS_OEM's grubenv (the partition labelled b.OEMLabel).
func ArmFallback(b BootImage, entry string, log io.Writer) error {
	dev, err := waitLabel(b.OEMLabel, 10*time.Second)
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
