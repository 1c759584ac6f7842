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
