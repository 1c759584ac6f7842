//go:build e2e

package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/tests/qemu"
)

// TestDisk checks the raw and qcow2 disks `kairos artifacts raw qcow2`
// writes from the e2e image, with the reference tools, then boots the qcow2
// under OVMF as far as the installed-system boot path exists today: firmware
// → COS_GRUB's EFI/BOOT/grub.cfg → COS_STATE's grub2/grub.cfg → loopback of
// cOS/active.img → its kernel and initrd with the contract's command line.
// (Reaching active_boot needs the agent's installed-system mounter; this test
// then checks the login too.)
func TestDisk(t *testing.T) {
	raw := artifact(t, "KAIROS_E2E_RAW")
	qc := artifact(t, "KAIROS_E2E_QCOW2")
	verifyChecksum(t, raw)
	verifyChecksum(t, qc)

	if out := run(t, "sgdisk", "-v", raw); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", out)
	}
	out := run(t, "sgdisk", "-p", raw)
	for _, name := range []string{"efi", "oem", "recovery", "state", "persistent"} {
		if !regexp.MustCompile(`(?m)\s` + name + `$`).MatchString(out) {
			t.Errorf("sgdisk -p lacks partition %q:\n%s", name, out)
		}
	}
	run(t, "qemu-img", "check", qc)
	// qemu-img compare reads both whole disks: the proof that the qcow2 is
	// the raw disk, cluster for cluster.
	if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, qc).CombinedOutput(); err != nil {
		t.Errorf("qemu-img compare: %v\n%s", err, out)
	}

	m, err := qemu.Start(qemu.Options{Firmware: qemu.UEFI, Disks: []string{qc}, LogPath: logPath(t)})
	must(t, err)
	defer m.Stop()
	t.Logf("serial log: %s", m.LogPath())
	ctx := context.Background()
	cmdline := regexp.MustCompile(`Command line: .*root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active\.img .*rd\.cos\.oemlabel=COS_OEM panic=5`)
	if _, err := m.WaitFor(ctx, cmdline, 4*time.Minute); err != nil {
		t.Fatalf("the disk did not boot the active image's kernel through grub: %v", err)
	}
	if _, err := m.WaitFor(ctx, regexp.MustCompile(`Unpacking initramfs|Freeing initrd memory|dracut`), 2*time.Minute); err != nil {
		t.Fatalf("the active image's initrd did not load: %v", err)
	}
}
