//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/release"
	"github.com/kairos-io/kairos/tests/qemu"
)

// installUserData is the NoCloud user-data of the auto-install: the
// install section and a user, as an operator would write them.
const installUserData = `#cloud-config
install:
  auto: true
  device: /dev/vda
  reboot: true
users:
  - name: tester
    passwd: e2e-Pass
    groups: [admin]
stages:
  boot:
    - name: e2e marker of the CIDATA config on the installed node
      files:
        - path: /run/e2e-cidata-boot
          content: "installed from CIDATA"
          permissions: 0644
`

// cidataISO writes a NoCloud volume (label CIDATA, user-data, meta-data)
// with xorriso.
func cidataISO(t *testing.T, userData string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "user-data"), []byte(userData), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "meta-data"), []byte("instance-id: kairos-e2e\nlocal-hostname: kairos-e2e\n"), 0o644))
	iso := filepath.Join(dir, "cidata.iso")
	run(t, "xorriso", "-as", "mkisofs", "-quiet", "-V", "CIDATA", "-J", "-r", "-o", iso, src)
	return iso
}

// autoInstall boots the ISO with an empty 16 GB disk and the CIDATA volume
// under fw, and waits for the installer to write the disk and reboot.
func autoInstall(ctx context.Context, t *testing.T, fw qemu.Firmware, iso, cidata string) string {
	t.Helper()
	return autoInstallOn(ctx, t, qemu.Options{Firmware: fw}, iso, cidata)
}

// autoInstallOn is autoInstall on a machine described by o (its firmware,
// its TPM).
func autoInstallOn(ctx context.Context, t *testing.T, o qemu.Options, iso, cidata string) string {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "node.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", disk, "16G")
	o.CDROM, o.Disks, o.MemoryMB, o.LogPath = iso, []string{disk}, 3072, logPath(t)+".install"
	o.Extra = append(o.Extra, "-drive", "file="+cidata+",media=cdrom,readonly=on,if=none,id=cidata", "-device", "ide-cd,drive=cidata,bus=ide.2")
	m, err := qemu.Start(o)
	must(t, err)
	defer m.Stop()
	t.Logf("installer serial log: %s", m.LogPath())
	// The live system (booted from the CD) is the source.
	if _, err := m.WaitFor(ctx, regexp.MustCompile(`kairos-agent install: source: dir:/run/rootfsbase`), 8*time.Minute); err != nil {
		t.Fatalf("the auto-install did not start from the live system: %v", err)
	}
	if _, err := m.WaitFor(ctx, regexp.MustCompile(`kairos-agent install: installing \S+ v\S+ to /dev/vda \(16384 MiB\)`), 2*time.Minute); err != nil {
		t.Fatalf("the auto-install did not start: %v", err)
	}
	if _, err := m.WaitFor(ctx, regexp.MustCompile(`kairos-agent install: /dev/vda written in`), 25*time.Minute); err != nil {
		t.Fatalf("the auto-install did not finish: %v", err)
	}
	// install.reboot: the VM restarts (QEMU exits, -no-reboot).
	if err := m.Wait(5 * time.Minute); err != nil {
		t.Fatalf("no reboot after the install: %v", err)
	}
	return disk
}

// TestAutoInstall installs from an ISO with a CIDATA cloud-config, under
// UEFI with Secure Boot enforcing (the core ISO; then the node's whole
// life, see lifecycle) and BIOS
// (the standard variant's ISO with k3s enabled), boots the disk and checks
// the node from inside: active boot, read-only root, contract labels, the
// cloud-config's user.
func TestAutoInstall(t *testing.T) {
	iso := buildImage(t).iso
	ctx := context.Background()

	t.Run("uefi", func(t *testing.T) {
		repo, v2 := upgradeImages(t)
		pub, key := sshKey(t)
		// Under Secure Boot, enforcing: the live system installs, the disk
		// boots through shim, and the node's whole life runs there.
		disk := autoInstall(ctx, t, qemu.SecureBoot, iso, cidataISO(t, withSSHKey(installUserData, pub)))
		port := freePort(t)
		m := bootInstalledLocked(ctx, t, qemu.SecureBoot, disk, ".1", port)
		sh := shell(ctx, t, m)
		checkInstalledNode(t, sh, e2eVersion)
		checkSecureBoot(t, sh, true)
		checkSSH(t, sh, port, key)
		// The node's life after the install: upgrades, fallback (an
		// unsigned kernel's too), recovery, reset (upgrade_test.go).
		lifecycle(ctx, t, lifecycleNode{disk: disk, iso: iso, repo: repo, v2: v2, fw: qemu.SecureBoot}, m, sh)
	})

	// Under SeaBIOS the standard variant's ISO (built through the gateway
	// frontend, with the k3s test double) installs with k3s enabled.
	t.Run("bios", func(t *testing.T) {
		f := newGatewayFixture(t, gatewayVersion, false)
		out := t.TempDir()
		f.buildctl(t, "iso", "type=local,dest="+out)
		std := filepath.Join(out, f.artifactName()+".iso")
		verifyChecksum(t, std)
		// Its cloud-config also speaks upstream's language (language_test.go).
		lang := newLanguageFixture(t)
		disk := autoInstall(ctx, t, qemu.BIOS, std, cidataISO(t, lang.with(k3sUserData)))
		m := bootInstalled(ctx, t, qemu.BIOS, disk, ".1")
		sh := shell(ctx, t, m)
		checkInstalledNode(t, sh, gatewayVersion)
		checkK3s(t, sh)
		checkLanguage(t, sh, lang)
		m = stateReset(ctx, t, disk, m, sh)
		noNetworkBoot(ctx, t, disk, m)
	})
}

// noNetworkBoot boots the k3s node on a LAN where nothing answers DHCP:
// the boot is not held up (network-online gives up after 20 s), k3s waits
// for a default route and the console says why, and the node's user logs
// in meanwhile (issue 22).
func noNetworkBoot(ctx context.Context, t *testing.T, disk string, m *qemu.Machine) {
	t.Helper()
	m.Send("sudo systemctl poweroff\n")
	if err := m.Wait(3 * time.Minute); err != nil {
		t.Fatalf("poweroff: %v", err)
	}
	iso, err := qemu.Start(qemu.Options{Firmware: qemu.BIOS, Disks: []string{disk}, Isolated: true, LogPath: logPath(t) + ".nonetwork"})
	must(t, err)
	t.Cleanup(iso.Stop)
	why := regexp.MustCompile(`k3s waits for the network: no default route; \S+: link up, no address`)
	line, err := iso.WaitFor(ctx, why, 8*time.Minute)
	if err != nil {
		t.Fatalf("no word on the console of why k3s waits: %v", err)
	}
	t.Logf("console: %s", line[0])
	if err := iso.Login(ctx, "tester", "e2e-Pass", 5*time.Minute); err != nil {
		t.Fatalf("no login on a node without network: %v", err)
	}
	sh := shell(ctx, t, iso)
	if got := sh("systemctl is-active k3s || true"); got != "activating" {
		t.Errorf("k3s is %q without a default route, want activating (waiting)", got)
	}
	if got := sh("kairos-agent state get boot"); got != "active_boot" {
		t.Errorf("boot %q, want active_boot", got)
	}
}

// stateReset picks grub's "state reset" entry once: recovery boots with
// kairos.reset, kairos-agent start resets unattended and reboots, and the
// node is back on active with /usr/local emptied and the OEM config kept
// (the first boot runs again: deployed once more). It returns the node,
// booted again.
func stateReset(ctx context.Context, t *testing.T, disk string, m *qemu.Machine, sh func(string) string) *qemu.Machine {
	t.Helper()
	sh("echo gone | sudo tee /usr/local/e2e-statereset >/dev/null")
	sh("sudo grub-editenv /oem/grubenv set next_entry=statereset && sync")
	m.Send("sudo systemctl reboot\n")
	if err := m.Wait(3 * time.Minute); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	rec, err := qemu.Start(qemu.Options{Firmware: qemu.BIOS, Disks: []string{disk}, LogPath: logPath(t) + ".statereset"})
	must(t, err)
	t.Cleanup(rec.Stop)
	if _, err := rec.WaitFor(ctx, regexp.MustCompile(`active and passive are the recovery image`), 8*time.Minute); err != nil {
		t.Fatalf("the statereset entry did not reset: %v", err)
	}
	if err := rec.Wait(3 * time.Minute); err != nil {
		t.Fatalf("no reboot after the reset: %v", err)
	}
	m = bootInstalled(ctx, t, qemu.BIOS, disk, ".2")
	sh = shell(ctx, t, m)
	if got := sh("kairos-agent state get boot"); got != "active_boot" {
		t.Errorf("after the state reset: %q, want active_boot", got)
	}
	if got := sh("test -e /usr/local/e2e-statereset && echo present || echo absent"); got != "absent" {
		t.Errorf("/usr/local/e2e-statereset survived the state reset")
	}
	if got := sh("sudo cat /oem/90_custom.yaml"); !strings.Contains(got, "e2e marker of the CIDATA config") {
		t.Errorf("the OEM cloud-config did not survive the state reset:\n%s", got)
	}
	waitDeployed(t, sh)
	return m
}

const hostKeyCmd = "timeout 120 sh -c 'until sudo test -s /etc/ssh/ssh_host_ed25519_key.pub; do sleep 1; done'; sudo cat /etc/ssh/ssh_host_ed25519_key.pub"

// bootInstalled boots the installed disk alone and logs in as the
// cloud-config's user.
func bootInstalled(ctx context.Context, t *testing.T, fw qemu.Firmware, disk, suffix string, extraDisks ...string) *qemu.Machine {
	t.Helper()
	m, err := qemu.Start(qemu.Options{Firmware: fw, Disks: append([]string{disk}, extraDisks...), LogPath: logPath(t) + suffix})
	must(t, err)
	t.Cleanup(m.Stop)
	t.Logf("serial log: %s", m.LogPath())
	if err := m.Login(ctx, "tester", "e2e-Pass", 8*time.Minute); err != nil {
		t.Fatalf("the cloud-config's user cannot log in: %v", err)
	}
	m.Run(ctx, "sudo dmesg -n 1", time.Minute)
	return m
}

// checkInstalledNode: what a fresh install must give.
func checkInstalledNode(t *testing.T, sh func(string) string, version string) {
	t.Helper()
	checkInstalledVersion(t, sh, "active_boot", version)
	if got := sh("id -nG"); !strings.Contains(" "+got+" ", " admin ") {
		t.Errorf("tester's groups %q lack admin", got)
	}
	if got := sh("sudo -n id -u"); got != "0" {
		t.Errorf("sudo as tester: %q", got)
	}
	// The installer copied the CIDATA config to /oem/90_custom.yaml; its
	// boot stage runs on the node.
	if got := sh("sudo cat /oem/90_custom.yaml"); !strings.Contains(got, "e2e marker of the CIDATA config") || !strings.Contains(got, "auto: true") {
		t.Errorf("/oem/90_custom.yaml:\n%s", got)
	}
	if got := sh("cat /run/e2e-cidata-boot"); got != "installed from CIDATA" {
		t.Errorf("the CIDATA config's boot stage did not run: %q", got)
	}
	if got := sh("sudo cat /oem/install.log"); !strings.Contains(got, "/dev/vda written in") {
		t.Errorf("/oem/install.log:\n%s", got)
	}
	// The same release as the ISO's live system (the image it was built from).
	rel, err := release.Parse([]byte(sh("cat /etc/kairos-release")))
	must(t, err)
	if rel["KAIROS_FLAVOR"] != "debian" || rel["KAIROS_VERSION"] != version {
		t.Errorf("kairos-release %v", rel)
	}
	// Partition names and labels of the contract, passive and recovery
	// images with their labels.
	if got := sh("lsblk -n -o PARTLABEL /dev/vda | tr -s '\\n ' ' '"); !strings.Contains(got, "efi bios oem recovery state persistent") {
		t.Errorf("partition names %q", got)
	}
	for img, label := range map[string]string{"/run/initramfs/cos-state/cOS/passive.img": "COS_PASSIVE", "/run/initramfs/cos-state/cOS/active.img": "COS_ACTIVE"} {
		if got := sh("sudo blkid -o value -s LABEL " + img); got != label {
			t.Errorf("%s label %q, want %s", img, got, label)
		}
	}
	// First boot ran: the agent marked the node deployed.
	waitDeployed(t, sh)
}

// k3sUserData enables k3s with arguments on a standard-variant install
// (and picks the disk itself).
var k3sUserData = strings.Replace(installUserData, "device: /dev/vda", "device: auto", 1) + `k3s:
  enabled: true
  args:
    - --disable=traefik
    - --node-name=kairos-e2e
  env:
    K3S_KUBECONFIG_MODE: "0644"
`

// checkK3s: on the first boot kairos-agent start wrote /etc/sysconfig/k3s
// from k3sUserData, enabled k3s, which ran the binary with those
// arguments, and marked the node deployed.
func checkK3s(t *testing.T, sh func(string) string) {
	t.Helper()
	if got := sh("kairos-agent state get kairos.variant"); got != "standard" {
		t.Errorf("variant %q", got)
	}
	sysconfig := sh("sudo cat /etc/sysconfig/k3s")
	for _, want := range []string{`K3S_ARGS="--disable=traefik --node-name=kairos-e2e"`, `K3S_KUBECONFIG_MODE="0644"`} {
		if !strings.Contains(sysconfig, want) {
			t.Errorf("/etc/sysconfig/k3s lacks %s:\n%s", want, sysconfig)
		}
	}
	// The service ran the binary with the arguments.
	args := sh("timeout 180 sh -c 'until test -s /var/lib/rancher/k3s/kairos-e2e-args; do sleep 1; done'; cat /var/lib/rancher/k3s/kairos-e2e-args")
	if args != "server --disable=traefik --node-name=kairos-e2e" {
		t.Errorf("k3s ran with %q", args)
	}
	if got := sh("systemctl is-enabled k3s"); got != "enabled" {
		t.Errorf("k3s is %q", got)
	}
	sh("test -e /usr/local/.kairos/deployed")
	if got := sh("sudo journalctl -b -u kairos-agent --no-pager | grep -c 'deployed (/usr/local/.kairos/deployed)' || true"); got != "1" {
		t.Errorf("kairos-agent start did not report the deployment: %q", got)
	}
}

// waitDeployed waits for kairos-agent start's sentinel, printing the
// agent's journal when it does not come (shell commands time out at 2
// minutes: the wait stays below that).
func waitDeployed(t *testing.T, sh func(string) string) {
	t.Helper()
	sh("timeout 100 sh -c 'until test -e /usr/local/.kairos/deployed; do sleep 1; done' || { systemctl status kairos-agent --no-pager; sudo journalctl -b -u kairos-agent --no-pager | tail -30; false; }")
}
