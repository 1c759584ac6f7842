//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/frontend"
	"github.com/kairos-io/kairos/internal/release"
	"github.com/kairos-io/kairos/tests/qemu"
	"github.com/kairos-io/kairos/tests/registry"
)

// arm64 guests are emulated instruction by instruction (no KVM, another
// architecture): a boot takes several times an amd64 one.
const arm64Boot = 20 * time.Minute

// TestArm64 builds the Debian image for linux/arm64 on this amd64 machine
// (build steps under QEMU user emulation through binfmt_misc, the base
// bootstrapped for arm64), as one multi-platform index with amd64, and
// boots the arm64 media on qemu-system-aarch64 -M virt -cpu max with AAVMF:
//
//  1. the live ISO: aarch64, KAIROS_ARCH=arm64, a live boot;
//  2. auto-install from it with a CIDATA config onto a virtio disk, which
//     then boots to active_boot with the contract's partitions (no BIOS);
//  3. on that node, `kairos-agent upgrade` from the index in a registry
//     takes the arm64 image;
//  4. the arm64 raw disk (kairos artifacts --platform linux/arm64 from the
//     index) boots to active_boot.
func TestArm64(t *testing.T) {
	slow(t)
	b := buildTools(t)
	ctx := context.Background()
	out := filepath.Join(outDir, "arm64")
	must(t, os.MkdirAll(out, 0o755))

	// One command, as ./earthly.sh +iso --ARCH=amd64,arm64 runs it: the
	// index and each platform's ISO, named with its arch.
	cmd := exec.Command(b.kairos, "build", "--flavor", "debian", "--version", e2eVersion, "--agent", b.agent, "--agent", b.agentArm64,
		"--platform", "linux/amd64,linux/arm64", "--build-arg", frontend.ArgImageRepo+"="+guestRepo,
		"--output", out, "--progress", "plain", "--target", "image", "--target", "iso")
	start := time.Now()
	must(t, runCmd(cmd))
	t.Logf("multi-platform image and ISOs built in %s", time.Since(start).Round(time.Second))
	rel, err := releaseOf("debian", e2eVersion)
	must(t, err)
	index := filepath.Join(out, rel.IndexArtifactName()+".oci.tar")
	verifyChecksum(t, index)
	armRel := rel
	armRel.Arch = "arm64"
	armName := armRel.ArtifactName()
	iso := filepath.Join(out, armName+".iso")
	verifyChecksum(t, iso)
	verifyChecksum(t, filepath.Join(out, rel.ArtifactName()+".iso"))
	armDigest := checkIndex(t, index)

	// The arm64 ISO boots from UEFI only: one El Torito entry, for EFI,
	// whose loader is BOOTAA64.EFI.
	report := run(t, "xorriso", "-indev", iso, "-report_el_torito", "plain")
	if !strings.Contains(report, "UEFI") || strings.Contains(report, "BIOS") {
		t.Errorf("arm64 ISO boot catalog:\n%s", report)
	}
	efi := filepath.Join(t.TempDir(), "uefi.img")
	run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/boot/uefi.img", efi)
	if ls := run(t, "mdir", "-b", "-i", efi, "::/EFI/BOOT"); !strings.Contains(ls, "BOOTAA64.EFI") || strings.Contains(ls, "BOOTX64.EFI") {
		t.Errorf("arm64 ISO's EFI image, /EFI/BOOT:\n%s", ls)
	}

	// The raw disk from the index's arm64 image, written natively here.
	run(t, b.kairos, "artifacts", "raw", "--platform", "linux/arm64", "--source", "oci-archive:"+index, "--output", out,
		"--cloud-config", filepath.Join(repoRoot(), "tests", "e2e", "testdata", "media-config.yaml"))
	raw := filepath.Join(out, armName+".raw")
	verifyChecksum(t, raw)
	if parts := run(t, "sgdisk", "-p", raw); strings.Contains(parts, " bios") || !strings.Contains(parts, " efi") {
		t.Errorf("arm64 disk partitions (want no bios_grub):\n%s", parts)
	}

	// The index in a registry, for the node's upgrade.
	reg := registry.Start(t, registry.FreeAddr(t))
	run(t, "skopeo", "copy", "--all", "--dest-tls-verify=false", "oci-archive:"+index, "docker://"+reg.Addr+"/kairos/debian:multi")
	if raw := run(t, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+reg.Addr+"/kairos/debian:multi"); !strings.Contains(raw, `"architecture":"amd64"`) || !strings.Contains(raw, armDigest) {
		t.Errorf("the index in the registry lacks a platform:\n%s", raw)
	}
	_, port, err := net.SplitHostPort(reg.Addr)
	must(t, err)
	guestRef := "10.0.2.2:" + port + "/kairos/debian:multi"

	t.Run("live", func(t *testing.T) {
		m, err := qemu.Start(qemu.Options{Arch: "arm64", Firmware: qemu.UEFI, CDROM: iso, LogPath: logPath(t)})
		must(t, err)
		defer m.Stop()
		t.Logf("serial log: %s", m.LogPath())
		if err := m.Login(ctx, "kairos", "kairos", arm64Boot); err != nil {
			t.Fatal(err)
		}
		sh := shell(ctx, t, m)
		sh("sudo dmesg -n 1")
		if got := sh("uname -m"); got != "aarch64" {
			t.Errorf("uname -m = %q", got)
		}
		checkArm64Release(t, sh)
		if got := sh("kairos-agent state get boot"); got != "livecd_boot" {
			t.Errorf("boot %q, want livecd_boot", got)
		}
		if got := sh("cat /proc/cmdline"); !strings.Contains(got, "console=ttyAMA0") {
			t.Errorf("live command line %q lacks the PL011 console", got)
		}
	})

	var disk string
	t.Run("install", func(t *testing.T) {
		disk = filepath.Join(t.TempDir(), "node.qcow2")
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", disk, "16G")
		cidata := cidataISO(t, installUserData)
		m, err := qemu.Start(qemu.Options{Arch: "arm64", Firmware: qemu.UEFI, CDROM: iso, Disks: []string{disk}, MemoryMB: 3072,
			LogPath: logPath(t) + ".install",
			Extra:   []string{"-drive", "file=" + cidata + ",media=cdrom,readonly=on,if=none,id=cidata", "-device", "scsi-cd,bus=scsi0.0,drive=cidata"}})
		must(t, err)
		defer m.Stop()
		t.Logf("installer serial log: %s", m.LogPath())
		if _, err := m.WaitFor(ctx, regexp.MustCompile(`kairos-agent install: installing \S+ v\S+ to /dev/vda \(16384 MiB\)`), arm64Boot); err != nil {
			t.Fatalf("the auto-install did not start: %v", err)
		}
		if _, err := m.WaitFor(ctx, regexp.MustCompile(`kairos-agent install: /dev/vda written in`), 40*time.Minute); err != nil {
			t.Fatalf("the auto-install did not finish: %v", err)
		}
		if err := m.Wait(10 * time.Minute); err != nil {
			t.Fatalf("no reboot after the install: %v", err)
		}

		m2, err := qemu.Start(qemu.Options{Arch: "arm64", Firmware: qemu.UEFI, Disks: []string{disk}, LogPath: logPath(t) + ".1"})
		must(t, err)
		defer m2.Stop()
		t.Logf("serial log: %s", m2.LogPath())
		if err := m2.Login(ctx, "tester", "e2e-Pass", arm64Boot); err != nil {
			t.Fatalf("the cloud-config's user cannot log in: %v", err)
		}
		sh := shell(ctx, t, m2)
		sh("sudo dmesg -n 1")
		checkInstalledVersion(t, sh, "active_boot", e2eVersion)
		checkArm64Release(t, sh)
		if got := sh("lsblk -n -o PARTLABEL /dev/vda | tr -s '\\n ' ' '"); !strings.Contains(got, "efi oem recovery state persistent") || strings.Contains(got, "bios") {
			t.Errorf("partition names %q (arm64: no bios_grub)", got)
		}
		if got := sh("sudo mount -o ro LABEL=COS_GRUB /mnt && ls /mnt/EFI/BOOT; sudo umount /mnt"); !strings.Contains(got, "BOOTAA64.EFI") {
			t.Errorf("ESP EFI/BOOT: %q", got)
		}
		waitDeployed(t, sh)

		// The index holds amd64 and arm64: the node takes arm64 (an
		// amd64 image would be refused by the architecture check).
		out, code, err := m2.Run(ctx, "sudo kairos-agent upgrade --allow-insecure-registries --source oci:"+guestRef+" 2>&1", 30*time.Minute)
		must(t, err)
		if code != 0 || !strings.Contains(out, "pulled arm64 image "+armDigest) || !strings.Contains(out, "done in") {
			t.Fatalf("upgrade from the multi-platform index (exit %d), want the arm64 image %s:\n%s", code, armDigest, out)
		}
		t.Logf("upgrade: %s", lastLines(out, 3))
	})

	t.Run("raw", func(t *testing.T) {
		// A copy: the booted disk grows COS_PERSISTENT into a bigger disk.
		disk := filepath.Join(t.TempDir(), "raw.qcow2")
		run(t, "qemu-img", "convert", "-O", "qcow2", raw, disk)
		run(t, "qemu-img", "resize", "-q", disk, "12G")
		m, err := qemu.Start(qemu.Options{Arch: "arm64", Firmware: qemu.UEFI, Disks: []string{disk}, LogPath: logPath(t)})
		must(t, err)
		defer m.Stop()
		t.Logf("serial log: %s", m.LogPath())
		if err := m.Login(ctx, diskUser, diskPassword, arm64Boot); err != nil {
			t.Fatal(err)
		}
		sh := shell(ctx, t, m)
		sh("sudo dmesg -n 1")
		checkInstalled(t, sh, "active_boot")
		checkArm64Release(t, sh)
	})
}

func checkArm64Release(t *testing.T, sh func(string) string) {
	t.Helper()
	rel, err := release.Parse([]byte(sh("cat /etc/kairos-release")))
	must(t, err)
	if rel["KAIROS_ARCH"] != "arm64" || rel["KAIROS_TARGETARCH"] != "arm64" || rel["KAIROS_VERSION"] != e2eVersion {
		t.Errorf("kairos-release: %v", rel)
	}
	if got := sh("file -L /usr/bin/kairos-agent 2>/dev/null || od -An -tx1 -j18 -N2 /usr/bin/kairos-agent"); !strings.Contains(got, "aarch64") && !strings.Contains(got, "b7 00") {
		t.Errorf("the agent in the image is not an arm64 binary: %q", got)
	}
}

// checkIndex reads the multi-platform archive: an index with exactly
// linux/amd64 and linux/arm64 images; it returns the arm64 one's digest.
func checkIndex(t *testing.T, archive string) string {
	t.Helper()
	top, entry := archiveEntry(t, archive)
	idx, err := top.ImageIndex(entry.Digest)
	must(t, err)
	m, err := idx.IndexManifest()
	must(t, err)
	got := map[string]string{}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.OS != "unknown" {
			got[d.Platform.Architecture] = d.Digest.String()
		}
	}
	js, _ := json.Marshal(m.Manifests)
	if len(got) != 2 || got["amd64"] == "" || got["arm64"] == "" {
		t.Fatalf("index platforms %v: %s", got, js)
	}
	t.Logf("image index %s: amd64 %s, arm64 %s", entry.Digest, got["amd64"], got["arm64"])
	return got["arm64"]
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}
