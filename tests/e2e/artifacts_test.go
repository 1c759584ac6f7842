//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/tests/qemu"
)

// isoCloudConfigMarker is what the media's cloud-config
// (testdata/media-config.yaml) writes in the boot stage.
const isoCloudConfigMarker = "cloud-config from the ISO"

// TestArtifactsISO boots the ISO written by `kairos artifacts iso` (our Go
// ISO 9660, FAT and squashfs writers, no root) as a USB stick, under OVMF and
// under SeaBIOS: the hybrid MBR/GPT system area is what makes it boot from a
// disk. Checks the live system and that /config.yaml of the ISO was applied.
func TestArtifactsISO(t *testing.T) {
	iso := buildMedia(t).iso
	verifyChecksum(t, iso)
	for _, fw := range []qemu.Firmware{qemu.UEFI, qemu.BIOS} {
		t.Run(string(fw)+"-usb", func(t *testing.T) {
			ctx := context.Background()
			m, err := qemu.Start(qemu.Options{Firmware: fw, USB: iso, LogPath: logPath(t)})
			must(t, err)
			defer m.Stop()
			t.Logf("serial log: %s", m.LogPath())
			if err := m.Login(ctx, "kairos", "kairos", 6*time.Minute); err != nil {
				t.Fatal(err)
			}
			m.Run(ctx, "sudo dmesg -n 1", time.Minute)
			checkLive(ctx, t, m)
			if fw == qemu.UEFI {
				// The signed chain boots with Secure Boot off too.
				checkSecureBoot(t, shell(ctx, t, m), false)
			}
			out, code, err := m.Run(ctx, "findmnt -n -o SOURCE /run/initramfs/live; cat /run/kairos-iso-config", time.Minute)
			must(t, err)
			if code != 0 || !strings.Contains(out, "/dev/sd") || !strings.Contains(out, isoCloudConfigMarker) {
				t.Errorf("live medium and ISO cloud-config (exit %d):\n%s", code, out)
			}
		})
	}
}
