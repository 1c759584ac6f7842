//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/kairos-io/kairos/tests/qemu"
)

// TestInteractiveInstall answers kairos-agent interactive-install over the
// serial console of the live ISO, boots the installed disk as the user it
// created, then removes active.img: grub's entry fails and the fallback
// (passive) boots instead of hanging.
func TestInteractiveInstall(t *testing.T) {
	slow(t)
	iso := buildImage(t).iso
	ctx := context.Background()
	disk := filepath.Join(t.TempDir(), "node.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", disk, "16G")
	live, err := qemu.Start(qemu.Options{Firmware: qemu.UEFI, CDROM: iso, Disks: []string{disk}, MemoryMB: 3072, LogPath: logPath(t) + ".install"})
	must(t, err)
	t.Cleanup(live.Stop)
	m := live
	if err := m.Login(ctx, "kairos", "kairos", 8*time.Minute); err != nil {
		t.Fatal(err)
	}
	m.Run(ctx, "sudo dmesg -n 1", time.Minute)
	m.Send("sudo kairos-agent interactive-install\n")
	for _, qa := range []struct{ prompt, answer string }{
		{`Disk to install to \[/dev/vda\]: $`, ""},
		{`User name \[kairos\]: $`, "ops"},
		{`Password \(empty: none, log in with an SSH key\): $`, "ops-Pass"},
		{`SSH public key \(empty: none\): $`, ""},
		{`Enable k3s \(y/n\) \[n\]: $`, "n"},
		{`Install to /dev/vda\? Everything on it is erased \(y/n\) \[n\]: $`, "y"},
	} {
		if _, err := m.WaitFor(ctx, regexp.MustCompile(qa.prompt), 3*time.Minute); err != nil {
			t.Fatalf("no prompt %q: %v", qa.prompt, err)
		}
		time.Sleep(300 * time.Millisecond)
		m.Send(qa.answer + "\n")
	}
	if _, err := m.WaitFor(ctx, regexp.MustCompile(`kairos-agent install: /dev/vda written in`), 15*time.Minute); err != nil {
		t.Fatalf("the interactive install did not finish: %v", err)
	}
	if err := m.Wait(5 * time.Minute); err != nil {
		t.Fatalf("no reboot after the install: %v", err)
	}

	boot := func(suffix string) (*qemu.Machine, func(string) string) {
		m, err := qemu.Start(qemu.Options{Firmware: qemu.UEFI, Disks: []string{disk}, LogPath: logPath(t) + suffix})
		must(t, err)
		t.Cleanup(m.Stop)
		if err := m.Login(ctx, "ops", "ops-Pass", 8*time.Minute); err != nil {
			t.Fatalf("the answered user cannot log in: %v", err)
		}
		m.Run(ctx, "sudo dmesg -n 1", time.Minute)
		return m, shell(ctx, t, m)
	}
	m, sh := boot(".1")
	checkInstalled(t, sh, "active_boot")
	if got := sh("sudo -n id -u"); got != "0" {
		t.Errorf("ops cannot sudo: %q", got)
	}
	sh("sudo mount -o remount,rw /run/initramfs/cos-state && sudo rm /run/initramfs/cos-state/cOS/active.img && sync")
	m.Send("sudo systemctl reboot\n")
	if err := m.Wait(5 * time.Minute); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	_, sh = boot(".2")
	if got := sh("kairos-agent state get boot"); got != "passive_boot" {
		t.Errorf("with active.img missing the node booted %q, want passive_boot", got)
	}
}
