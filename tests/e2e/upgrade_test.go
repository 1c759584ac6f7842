//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kairos-io/kairos/tests/qemu"
	"github.com/kairos-io/kairos/tests/registry"
)

// upgradeImages builds v2 of the image through the frontend (BuildKit
// pushes it to a real registry on 127.0.0.1:5000) and a small image that
// does not boot (pushBadInitrd); it returns the repository as the guest reaches it
// (10.0.2.2:5000) and v2's version.
func upgradeImages(t *testing.T) (string, string) {
	t.Helper()
	v2 := "v0.0.0-upgrade"
	f := newGatewayFixture(t, v2, false)
	repo := "127.0.0.1:5000/kairos"
	f.buildctl(t, "image", "type=image,name="+repo+":v2,push=true,registry.insecure=true")
	pushBadInitrd(t, repo+":v2", repo+":bad")
	pushUnsignedKernel(t, repo+":v2", repo+":unsigned")
	// v2 is also tagged as releases are named (KAIROS_IMAGE_LABEL): what
	// `kairos-agent upgrade` with no source finds in the image's own
	// repository (KAIROS_IMAGE_REPO, guestRepo).
	rel, err := releaseOf("debian", v2)
	must(t, err)
	src, err := name.ParseReference(repo+":v2", name.Insecure)
	must(t, err)
	desc, err := remote.Get(src)
	must(t, err)
	dst, err := name.NewTag(repo+":"+rel.ImageTag(), name.Insecure)
	must(t, err)
	must(t, remote.Tag(dst, desc))
	return guestRepo, v2
}

// guestRepo is the e2e registry (127.0.0.1:5000/kairos) as guests reach
// it; the e2e image names it as its own repository (IMAGE_REPO).
const guestRepo = "10.0.2.2:5000/kairos"

// lifecycleNode is an installed node (v1, the e2e core image) and what its
// life needs: the ISO (its squashfs becomes a recovery image) and the
// registry holding v2 and the bad image.
type lifecycleNode struct {
	disk, iso string
	repo, v2  string
	// fw boots every step; under qemu.SecureBoot the life includes an
	// upgrade whose kernel is not signed.
	fw qemu.Firmware
}

// lifecycle takes the node (booted in m, logged in as the cloud-config's
// user) through its life, each step checked from inside:
//
//  1. power cut in the middle of an upgrade's write (QEMU killed): the next
//     boot is v1 and healthy: files under /usr/local and /etc/ssh and the
//     SSH host key kept, a change to /etc/motd gone; the upgrade then
//     succeeds;
//  2. v2 boots: release v2, passive.img holds v1, persistent data and the
//     host key unchanged, boot assessment cleared;
//  3. an upgrade whose initrd is garbage: its boot panics and grub falls
//     back to passive by itself, upgrade_failure visible;
//  4. a recovery.squashfs (the ISO's) in place of recovery.img boots
//     recovery_boot through grub's one-shot next_entry=recovery;
//  5. upgrade --recovery from there, and the next recovery boot is v2;
//  6. reset from recovery: active_boot again (next_entry was one-shot),
//     /usr/local wiped, the OEM cloud-config (and so its user) kept.
//
// A missing active.img falling back to passive is TestInteractiveInstall's.
func lifecycle(ctx context.Context, t *testing.T, n lifecycleNode, m *qemu.Machine, sh func(string) string) {
	v1 := e2eVersion
	reboot := func(m *qemu.Machine) {
		t.Helper()
		m.Send("sudo systemctl reboot\n")
		if err := m.Wait(5 * time.Minute); err != nil {
			t.Fatalf("reboot: %v", err)
		}
	}
	// An upgrade writes a whole image under emulation: minutes, not the
	// shell's usual two.
	upgrade := func(m *qemu.Machine, args string) string {
		t.Helper()
		cmd := "sudo kairos-agent upgrade --allow-insecure-registries " + args + " 2>&1"
		out, code, err := m.Run(ctx, cmd, 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Fatalf("%q exited %d:\n%s", cmd, code, out)
		}
		return out
	}
	version := func(sh func(string) string) string {
		return sh(". /etc/kairos-release && echo $KAIROS_VERSION")
	}

	// 1. Power cut while transition.img is written.
	hostKey := sh(hostKeyCmd)
	sh("echo kept | sudo tee /usr/local/e2e-persistent /etc/ssh/e2e-persistent >/dev/null")
	sh("echo changed | sudo tee /etc/motd >/dev/null && sync")
	m.Send("sudo kairos-agent upgrade --allow-insecure-registries --source oci:" + n.repo + ":v2\n")
	got, err := m.WaitFor(ctx, regexp.MustCompile(`transition\.img: [3-8]0%|kairos-agent: error: .*`), 15*time.Minute)
	if err != nil {
		t.Fatalf("the upgrade did not get to write transition.img: %v", err)
	}
	if strings.Contains(got[0], "error") {
		t.Fatalf("the upgrade failed before writing transition.img: %s", got[0])
	}
	m.Stop() // the plug is pulled

	m = bootInstalled(ctx, t, n.fw, n.disk, ".2")
	sh = shell(ctx, t, m)
	checkInstalled(t, sh, "active_boot")
	if got := version(sh); got != v1 {
		t.Fatalf("after the power cut the node runs %q, want the old %s", got, v1)
	}
	for _, f := range []string{"/usr/local/e2e-persistent", "/etc/ssh/e2e-persistent"} {
		if got := sh("cat " + f + " 2>&1 || true"); got != "kept" {
			t.Errorf("%s after a reboot = %q, want kept (persistent)", f, got)
		}
	}
	if got := sh(hostKeyCmd); got != hostKey {
		t.Errorf("SSH host key changed across a reboot:\n%s\n%s", hostKey, got)
	}
	if got := sh("cat /etc/motd"); strings.Contains(got, "changed") {
		t.Errorf("/etc/motd kept a change across a reboot: /etc is ephemeral")
	}
	// With no source: the newest release of the image's line in its own
	// repository (KAIROS_IMAGE_REPO), as upstream.
	if out := upgrade(m, ""); !strings.Contains(out, "newest release in "+n.repo+": bookworm-core-amd64-generic-"+n.v2) || !strings.Contains(out, "is installed as active.img") {
		t.Fatalf("upgrade with no source after the power cut:\n%s", out)
	}
	reboot(m)

	// 2. v2.
	m = bootInstalled(ctx, t, n.fw, n.disk, ".3")
	sh = shell(ctx, t, m)
	checkInstalledVersion(t, sh, "active_boot", n.v2)
	if got := sh("sudo debugfs -R 'cat /etc/kairos-release' /run/initramfs/cos-state/cOS/passive.img 2>/dev/null | grep KAIROS_VERSION="); !strings.Contains(got, v1) {
		t.Errorf("passive.img holds %q, want %s", got, v1)
	}
	if got := sh("cat /usr/local/e2e-persistent"); got != "kept" {
		t.Errorf("persistent data after the upgrade: %q", got)
	}
	if got := sh(hostKeyCmd); got != hostKey {
		t.Errorf("SSH host key changed by the upgrade")
	}
	// The new active came up: kairos-agent start cleared the assessment.
	sh("timeout 180 sh -c 'until systemctl is-active -q kairos-agent; do sleep 1; done'")
	if got := sh("grub-editenv /run/initramfs/cos-state/boot_assessment list"); got != "" {
		t.Errorf("boot assessment not cleared after a good boot: %q", got)
	}

	// 3. An upgrade that does not boot: the node falls back by itself.
	upgrade(m, "--source oci:"+n.repo+":bad")
	reboot(m)
	bad, err := qemu.Start(qemu.Options{Firmware: n.fw, Disks: []string{n.disk}, LogPath: logPath(t) + ".4"})
	must(t, err)
	t.Cleanup(bad.Stop)
	if _, err := bad.WaitFor(ctx, regexp.MustCompile(`Kernel panic`), 6*time.Minute); err != nil {
		t.Fatalf("the bad image did not fail its boot: %v", err)
	}
	if err := bad.Wait(2 * time.Minute); err != nil { // panic=5 reboots
		t.Fatalf("no reboot after the panic: %v", err)
	}
	// The ISO's squashfs rides along as a second disk for step 4.
	squash := filepath.Join(t.TempDir(), "rootfs.squashfs")
	run(t, "xorriso", "-osirrox", "on", "-indev", n.iso, "-extract", "/rootfs.squashfs", squash)
	m = bootInstalled(ctx, t, n.fw, n.disk, ".5", squash)
	sh = shell(ctx, t, m)
	if got := sh("kairos-agent state get boot"); got != "passive_boot" {
		t.Errorf("after the failed boot: %q, want passive_boot", got)
	}
	if got := sh("kairos-agent state get upgrade_failure"); got != "true" {
		t.Errorf("upgrade_failure %q", got)
	}
	sh("test -f /run/cos/upgrade_failure")
	if got := version(sh); got != n.v2 {
		t.Errorf("the fallback runs %q, want %s (active before the bad upgrade)", got, n.v2)
	}

	// 3b. Under Secure Boot, an upgrade whose kernel is not signed: grub
	// refuses it and boots passive, with upgrade_failure.
	if n.fw == qemu.SecureBoot {
		if out := upgrade(m, "--source oci:"+n.repo+":unsigned"); !strings.Contains(out, "is installed as active.img") {
			t.Fatalf("upgrade to the unsigned kernel:\n%s", out)
		}
		reboot(m)
		m = bootInstalled(ctx, t, n.fw, n.disk, ".5b", squash)
		sh = shell(ctx, t, m)
		if !m.Seen(regexp.MustCompile(`bad shim signature`)) {
			t.Errorf("the serial log does not show grub refusing the unsigned kernel (bad shim signature)")
		}
		if got := sh("kairos-agent state get boot"); got != "passive_boot" {
			t.Errorf("after the unsigned kernel: %q, want passive_boot", got)
		}
		if got := sh("kairos-agent state get upgrade_failure"); got != "true" {
			t.Errorf("after the unsigned kernel: upgrade_failure %q, want true", got)
		}
		if got := version(sh); got != n.v2 {
			t.Errorf("after the unsigned kernel the node runs %q, want %s", got, n.v2)
		}
	}

	// 4. A squashfs recovery image.
	sh("sudo mkdir -p /run/e2e-rec && sudo mount /dev/disk/by-label/COS_RECOVERY /run/e2e-rec")
	sh("sudo dd if=/dev/vdb of=/run/e2e-rec/cOS/recovery.squashfs bs=1M status=none && sudo rm /run/e2e-rec/cOS/recovery.img && sudo umount /run/e2e-rec")
	sh("sudo grub-editenv /oem/grubenv set next_entry=recovery && sync")
	reboot(m)
	m = bootInstalled(ctx, t, n.fw, n.disk, ".6")
	sh = shell(ctx, t, m)
	if got := sh("kairos-agent state get boot"); got != "recovery_boot" {
		t.Errorf("boot %q, want recovery_boot", got)
	}
	if got := sh("findmnt -n -o FSTYPE /"); got != "squashfs" {
		t.Errorf("/ is %q, want the recovery squashfs", got)
	}
	for path, label := range map[string]string{"/oem": "COS_OEM", "/usr/local": "COS_PERSISTENT", "/run/initramfs/cos-state": "COS_RECOVERY"} {
		if got := sh("findmnt -n -o LABEL " + path + " || true"); got != label {
			t.Errorf("%s is %q, want %s mounted", path, got, label)
		}
	}

	// 5. The recovery slot.
	if out := upgrade(m, "--recovery --source oci:"+n.repo+":v2"); !strings.Contains(out, "is installed as recovery.img") {
		t.Fatalf("recovery upgrade:\n%s", out)
	}
	sh("sudo grub-editenv /oem/grubenv set next_entry=recovery && sync")
	reboot(m)
	m = bootInstalled(ctx, t, n.fw, n.disk, ".7")
	sh = shell(ctx, t, m)
	checkInstalledVersion(t, sh, "recovery_boot", n.v2)

	// 6. Reset.
	m.Send("sudo kairos-agent reset --unattended --reboot\n")
	if err := m.Wait(10 * time.Minute); err != nil {
		t.Fatalf("reset did not reboot: %v", err)
	}
	m = bootInstalled(ctx, t, n.fw, n.disk, ".8")
	sh = shell(ctx, t, m)
	checkInstalledVersion(t, sh, "active_boot", n.v2)
	if got := sh("test -e /usr/local/e2e-persistent && echo present || echo absent"); got != "absent" {
		t.Errorf("/usr/local/e2e-persistent survived the reset")
	}
	if got := sh("sudo cat /oem/90_custom.yaml"); !strings.Contains(got, "e2e marker of the CIDATA config") {
		t.Errorf("the OEM cloud-config did not survive the reset:\n%s", got)
	}
	if got := sh("kairos-agent state get upgrade_failure"); got != "false" {
		t.Errorf("upgrade_failure after reset: %q", got)
	}
}

// pushBadInitrd pushes a small image that does not boot: src's release
// file and kernel with a garbage /boot/initrd (the kernel cannot start
// userspace and panics). Small, so that the guest writes it in seconds.
func pushBadInitrd(t *testing.T, src, dst string) {
	t.Helper()
	pushBroken(t, src, dst, func(k []byte) []byte { return k })
}

// pushUnsignedKernel pushes the same small image with its kernel's
// signature taken off: Secure Boot refuses to run it.
func pushUnsignedKernel(t *testing.T, src, dst string) {
	t.Helper()
	pushBroken(t, src, dst, func(k []byte) []byte { return unsignKernel(t, k) })
}

// pushBroken pushes src's release file and kernel (changed by kernel)
// with a garbage /boot/initrd as dst.
func pushBroken(t *testing.T, src, dst string, kernelOf func([]byte) []byte) {
	t.Helper()
	srcRef, err := name.ParseReference(src, name.Insecure)
	must(t, err)
	img, err := remote.Image(srcRef)
	must(t, err)
	files, links, _ := imageFiles(t, img, func(name string) bool {
		return name == "etc/kairos-release" || strings.HasPrefix(name, "boot/vmlinuz")
	})
	kernel := "boot/vmlinuz"
	for i := 0; i < 8 && files[kernel] == nil; i++ {
		target, ok := links[kernel]
		if !ok {
			t.Fatalf("%s has no kernel at /boot/vmlinuz", src)
		}
		if path.IsAbs(target) {
			kernel = strings.TrimPrefix(path.Clean(target), "/")
		} else {
			kernel = path.Join(path.Dir(kernel), target)
		}
	}
	if files["etc/kairos-release"] == nil || files[kernel] == nil {
		t.Fatalf("%s: no /etc/kairos-release or kernel (%s)", src, kernel)
	}

	dir := t.TempDir()
	for file, data := range map[string][]byte{
		"etc/kairos-release": files["etc/kairos-release"],
		"boot/vmlinuz":       kernelOf(files[kernel]),
		"boot/initrd":        bytes.Repeat([]byte("not an initramfs\n"), 4096),
	} {
		must(t, os.MkdirAll(filepath.Join(dir, path.Dir(file)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, file), data, 0o644))
	}
	registry.PushDir(t, dir, dst)
}
