//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/agent/crypt"
	"github.com/kairos-io/kairos/tests/qemu"
	"github.com/kairos-io/kairos/tests/registry"
)

// encryptedUserData installs with COS_PERSISTENT and COS_OEM encrypted
// (upstream's key) and a recovery passphrase.
const encryptedUserData = `#cloud-config
install:
  auto: true
  device: /dev/vda
  reboot: true
  encrypted_partitions:
    - COS_PERSISTENT
    - COS_OEM
  encryption:
    recovery_passphrase: "e2e recovery passphrase"
users:
  - name: tester
    passwd: e2e-Pass
    groups: [admin]
`

// TestEncryption installs a node under Secure Boot with a software TPM
// (swtpm) and both data partitions encrypted, and follows it: it boots with
// no prompt, the partitions are LUKS2 under their labels, data survives a
// reboot, the disk read from the host shows LUKS headers and not the data,
// a fresh TPM does not unlock it (the console says why) while the original
// still does, and an upgrade and a reset keep it encrypted and bootable.
func TestEncryption(t *testing.T) {
	slow(t)
	iso := buildImage(t).iso
	ctx := context.Background()
	tpm := filepath.Join(t.TempDir(), "tpm")
	disk := autoInstallOn(ctx, t, qemu.Options{Firmware: qemu.SecureBoot, TPM: tpm}, iso, cidataISO(t, encryptedUserData))

	boot := func(suffix, tpmDir string) *qemu.Machine {
		t.Helper()
		m, err := qemu.Start(qemu.Options{Firmware: qemu.SecureBoot, TPM: tpmDir, Disks: []string{disk}, LogPath: logPath(t) + suffix})
		must(t, err)
		t.Cleanup(m.Stop)
		t.Logf("serial log: %s", m.LogPath())
		return m
	}
	login := func(m *qemu.Machine) func(string) string {
		t.Helper()
		// The user comes from the config on the encrypted COS_OEM: logging
		// in proves it opened.
		if err := m.Login(ctx, "tester", "e2e-Pass", 8*time.Minute); err != nil {
			t.Fatalf("the encrypted node did not boot to its config's user: %v", err)
		}
		m.Run(ctx, "sudo dmesg -n 1", time.Minute)
		return shell(ctx, t, m)
	}
	reboot := func(m *qemu.Machine) {
		t.Helper()
		m.Send("sudo systemctl reboot\n")
		if err := m.Wait(5 * time.Minute); err != nil {
			t.Fatalf("reboot: %v", err)
		}
	}
	marker := "kairos-e2e-secret-" + randomHex(t)

	// 1. First boot: unlocked by the TPM, no prompt.
	m := boot(".1", tpm)
	sh := login(m)
	for _, l := range []string{"COS_OEM", "COS_PERSISTENT"} {
		if !m.Seen(regexp.MustCompile(l + ` \(/dev/vd[a-z0-9]+\) unlocked with the TPM`)) {
			t.Errorf("the console does not say %s was unlocked with the TPM", l)
		}
	}
	if m.Seen(regexp.MustCompile(`(?i)passphrase for|Please enter`)) {
		t.Errorf("the boot asked for a passphrase")
	}
	checkBootEncrypted(t, sh, "active_boot")
	checkSecureBoot(t, sh, true)
	checkEncrypted(t, sh)
	sh("echo " + marker + " | sudo tee /usr/local/e2e-secret >/dev/null && sync")
	reboot(m)

	// 2. The data survives a reboot.
	m = boot(".2", tpm)
	sh = login(m)
	if got := sh("cat /usr/local/e2e-secret"); got != marker {
		t.Fatalf("/usr/local/e2e-secret after a reboot: %q", got)
	}
	m.Send("sudo systemctl poweroff\n")
	if err := m.Wait(5 * time.Minute); err != nil {
		t.Fatalf("poweroff: %v", err)
	}

	// 3. From the host: LUKS headers, not the data.
	checkDiskFromHost(t, disk, marker)

	// 4. Another TPM: nothing opens, the console says why; the data stays.
	other := boot(".3-fresh-tpm", filepath.Join(t.TempDir(), "fresh-tpm"))
	for _, l := range []string{"COS_OEM", "COS_PERSISTENT"} {
		if _, err := other.WaitFor(ctx, regexp.MustCompile(l+` \(/dev/vd[a-z0-9]+\) is encrypted and the TPM did not release its key`), 8*time.Minute); err != nil {
			t.Fatalf("a fresh TPM: no message about %s: %v", l, err)
		}
	}
	if _, err := other.WaitFor(ctx, regexp.MustCompile(`login:`), 4*time.Minute); err != nil {
		t.Fatalf("the node without its keys did not finish booting: %v", err)
	}
	other.Stop()

	// 5. The original TPM still opens it, the data intact; then an upgrade
	// (the same image from a registry).
	reg := registry.Start(t, registry.FreeAddr(t))
	run(t, "skopeo", "copy", "--dest-tls-verify=false", "oci-archive:"+buildImage(t).archive, "docker://"+reg.Addr+"/kairos/debian:enc")
	_, port, _ := strings.Cut(reg.Addr, ":")
	m = boot(".4", tpm)
	sh = login(m)
	if got := sh("cat /usr/local/e2e-secret"); got != marker {
		t.Fatalf("with the original TPM after a fresh one: %q", got)
	}
	out, code, err := m.Run(ctx, "sudo kairos-agent upgrade --allow-insecure-registries --source oci:10.0.2.2:"+port+"/kairos/debian:enc 2>&1", 15*time.Minute)
	must(t, err)
	if code != 0 || !strings.Contains(out, "is installed as active.img") {
		t.Fatalf("upgrade on the encrypted node (exit %d):\n%s", code, out)
	}
	reboot(m)
	m = boot(".5", tpm)
	sh = login(m)
	checkBootEncrypted(t, sh, "active_boot")
	checkEncrypted(t, sh)
	if got := sh("cat /usr/local/e2e-secret"); got != marker {
		t.Fatalf("after the upgrade: %q", got)
	}

	// 6. Reset, from recovery: COS_OEM is grub-blind, so the one-shot entry
	// goes to COS_STATE's grubenv.
	if got := sh("sudo grub-editenv /run/initramfs/cos-state/grubenv list"); !strings.Contains(got, "next_entry=") && got != "" {
		t.Logf("COS_STATE grubenv: %s", got)
	}
	sh("sudo mount -o remount,rw /run/initramfs/cos-state && sudo grub-editenv /run/initramfs/cos-state/grubenv set next_entry=recovery && sync")
	reboot(m)
	m = boot(".6", tpm)
	sh = login(m)
	if got := sh("kairos-agent state get boot"); got != "recovery_boot" {
		t.Fatalf("boot %q, want recovery_boot (next_entry on COS_STATE's grubenv)", got)
	}
	m.Send("sudo kairos-agent reset --unattended --reboot\n")
	if err := m.Wait(10 * time.Minute); err != nil {
		t.Fatalf("reset did not reboot: %v", err)
	}
	m = boot(".7", tpm)
	sh = login(m)
	checkBootEncrypted(t, sh, "active_boot")
	checkEncrypted(t, sh)
	if got := sh("test -e /usr/local/e2e-secret && echo present || echo absent"); got != "absent" {
		t.Errorf("/usr/local/e2e-secret survived the reset")
	}
}

// checkBootEncrypted: the immutable layout of an encrypted node's boot
// (checkInstalled reads partition geometry that an opened container,
// a device-mapper device, does not have).
func checkBootEncrypted(t *testing.T, sh func(string) string, mode string) {
	t.Helper()
	if got := sh("kairos-agent state get boot"); got != mode {
		t.Errorf("kairos-agent state get boot = %q, want %q", got, mode)
	}
	if got := sh("findmnt -n -o LABEL,OPTIONS /"); !strings.HasPrefix(got, "COS_ACTIVE") || !strings.Contains(got, "ro") {
		t.Errorf("/ is %q, want COS_ACTIVE read-only", got)
	}
	for path, label := range map[string]string{"/oem": "COS_OEM", "/usr/local": "COS_PERSISTENT", "/run/initramfs/cos-state": "COS_STATE"} {
		if got := sh("findmnt -n -o LABEL " + path + " || true"); got != label {
			t.Errorf("%s is %q, want %s mounted", path, got, label)
		}
	}
	for key, want := range map[string]string{"oem.mount_point": "/oem", "persistent.mount_point": "/usr/local", "persistent.found": "true"} {
		if got := sh("kairos-agent state get " + key); got != want {
			t.Errorf("kairos-agent state get %s = %q, want %q", key, got, want)
		}
	}
}

// checkEncrypted: COS_PERSISTENT and COS_OEM are LUKS2 containers
// (labeled kairos-persistent and kairos-oem, the ext4 inside with the
// contract's labels), opened as kairos-persistent and kairos-oem, mounted at
// /usr/local and /oem; the key is in a systemd-tpm2 token on PCR 7, and
// the recovery passphrase has a keyslot of its own (2 keyslots).
func checkEncrypted(t *testing.T, sh func(string) string) {
	t.Helper()
	lsblk := sh("lsblk -n -r -o NAME,FSTYPE,LABEL")
	for _, l := range []string{"COS_PERSISTENT", "COS_OEM"} {
		if !regexp.MustCompile(`(?m)^vda\d+ crypto_LUKS ` + crypt.ContainerLabel(l) + `$`).MatchString(lsblk) {
			t.Errorf("lsblk shows no crypto_LUKS partition labeled %s:\n%s", crypt.ContainerLabel(l), lsblk)
		}
		name := crypt.MapperName(l)
		if !regexp.MustCompile(`(?m)^` + name + ` ext4 ` + l + `$`).MatchString(lsblk) {
			t.Errorf("lsblk shows no opened %s with ext4 %s inside:\n%s", name, l, lsblk)
		}
	}
	for dir, name := range map[string]string{"/usr/local": "kairos-persistent", "/oem": "kairos-oem"} {
		if got := sh("findmnt -n -o SOURCE " + dir); got != "/dev/mapper/"+name {
			t.Errorf("%s is mounted from %q, want /dev/mapper/%s", dir, got, name)
		}
	}
	dump := sh("sudo cryptsetup luksDump $(readlink -f /dev/disk/by-partlabel/persistent)")
	if !strings.Contains(dump, "systemd-tpm2") || !regexp.MustCompile(`tpm2-(hash-)?pcrs:\s+7\b`).MatchString(dump) {
		t.Errorf("COS_PERSISTENT has no systemd-tpm2 token on PCR 7:\n%s", dump)
	}
	if n := len(regexp.MustCompile(`(?m)^\s+\d+: luks2$`).FindAllString(dump, -1)); n != 2 {
		t.Errorf("COS_PERSISTENT has %d keyslots, want 2 (the TPM's and the recovery passphrase's; the formatting one removed):\n%s", n, dump)
	}
	// The recovery passphrase opens it without the TPM.
	sh("printf %s 'e2e recovery passphrase' | sudo cryptsetup open --test-passphrase --key-file - $(readlink -f /dev/disk/by-partlabel/persistent)")
}

// checkDiskFromHost reads the node's disk on the host: the persistent and
// OEM partitions start with LUKS2 headers labeled as the contract says,
// and the marker written to /usr/local is nowhere in the image.
func checkDiskFromHost(t *testing.T, disk, marker string) {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "node.raw")
	run(t, "qemu-img", "convert", "-O", "raw", disk, raw)
	parts := run(t, "sfdisk", "-d", raw)
	f, err := os.Open(raw)
	must(t, err)
	defer f.Close()
	found := map[string]bool{}
	for _, line := range strings.Split(parts, "\n") {
		m := regexp.MustCompile(`start=\s*(\d+).*name="(\w+)"`).FindStringSubmatch(line)
		if m == nil || (m[2] != "persistent" && m[2] != "oem") {
			continue
		}
		start, _ := strconv.ParseInt(m[1], 10, 64)
		label, ok, err := crypt.Label(ioAt{f, start * 512})
		must(t, err)
		if !ok || label != crypt.ContainerLabel("COS_"+strings.ToUpper(m[2])) {
			t.Errorf("partition %s: LUKS2 %v, label %q", m[2], ok, label)
		}
		found[m[2]] = true
	}
	if !found["persistent"] || !found["oem"] {
		t.Fatalf("no persistent and oem partitions in:\n%s", parts)
	}
	// The whole image, 1 MiB at a time (it is sparse: holes read fast).
	buf := make([]byte, 1<<20+len(marker))
	for off := int64(0); ; off += 1 << 20 {
		n, err := f.ReadAt(buf, off)
		if bytes.Contains(buf[:n], []byte(marker)) {
			t.Fatalf("the marker written to /usr/local is readable in the disk image at about %d: not encrypted", off)
		}
		if err != nil {
			break
		}
	}
}

// ioAt reads r from offset base.
type ioAt struct {
	f    *os.File
	base int64
}

func (r ioAt) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, r.base+off) }

func randomHex(t *testing.T) string {
	b := make([]byte, 8)
	_, err := rand.Read(b)
	must(t, err)
	return hex.EncodeToString(b)
}
