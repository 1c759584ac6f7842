//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/gpt/gpttest"
	"github.com/kairos-io/kairos/internal/diskfmt/qcow2/qcow2test"
	"github.com/kairos-io/kairos/tests/qemu"
)

// TestDisk checks the raw and qcow2 disks `kairos artifacts raw qcow2`
// writes from the e2e image, with the reference tools, then boots the qcow2
// under OVMF: firmware → COS_GRUB's EFI/BOOT/grub.cfg → COS_STATE's
// grub2/grub.cfg → loopback of cOS/active.img → its kernel and initrd →
// kairos-agent mount (loop, then the layout) → login. Checks the immutable
// layout from inside; and the same disk boots under SeaBIOS. (The
// installed node's life, reboots, recovery, upgrades and reset, is
// TestAutoInstall's.)
func TestDisk(t *testing.T) {
	md := buildMedia(t)
	raw, qc := md.raw, md.qcow2
	verifyChecksum(t, raw)
	verifyChecksum(t, qc)

	if err := gpttest.Verify(raw, gpttest.Table{}); err != nil {
		t.Error(err)
	}
	table, err := gpttest.Read(raw)
	must(t, err)
	for _, name := range []string{"efi", "oem", "recovery", "state", "persistent"} {
		if !slices.ContainsFunc(table.Partitions, func(p gpttest.Partition) bool { return p.Name == name }) {
			t.Errorf("sgdisk -p lacks partition %q: %+v", name, table.Partitions)
		}
	}
	// qemu-img compare reads both whole disks: the proof that the qcow2 is
	// the raw disk, cluster for cluster.
	if err := qcow2test.Verify(qc, raw); err != nil {
		t.Error(err)
	}

	// The node boots a copy-on-write overlay: the artifact stays as
	// written. The overlay is 1 GiB bigger, as a disk the image is flashed
	// onto: COS_PERSISTENT grows into it on the first boot
	// (/system/oem/00_rootfs.yaml; checkInstalled checks it fills the disk).
	st, err := os.Stat(raw)
	must(t, err)
	node := filepath.Join(t.TempDir(), "node.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", qc, node, strconv.FormatInt(st.Size()+1<<30, 10))
	ctx := context.Background()

	m, err := qemu.Start(qemu.Options{Firmware: qemu.UEFI, Disks: []string{node}, LogPath: logPath(t)})
	must(t, err)
	defer func() { m.Stop() }()
	t.Logf("serial log: %s", m.LogPath())
	cmdline := regexp.MustCompile(`Command line: .*root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active\.img .*rd\.cos\.oemlabel=COS_OEM panic=5`)
	if _, err := m.WaitFor(ctx, cmdline, 4*time.Minute); err != nil {
		t.Fatalf("the disk did not boot the active image's kernel through grub: %v", err)
	}
	if err := m.Login(ctx, diskUser, diskPassword, 6*time.Minute); err != nil {
		t.Fatal(err)
	}
	sh := shell(ctx, t, m)
	m.Run(ctx, "sudo dmesg -n 1", time.Minute)
	checkInstalled(t, sh, "active_boot")
	// The cloud-config given to `kairos artifacts --cloud-config` is
	// /oem/90_custom.yaml: its boot stage ran.
	if got := sh("cat /run/kairos-iso-config"); got != isoCloudConfigMarker {
		t.Errorf("/oem/90_custom.yaml did not run: /run/kairos-iso-config = %q", got)
	}
	// Its initramfs stage ran on the new root before switch-root.
	if got := sh("cat /etc/kairos-initramfs-stage"); got != "ran before switch-root" {
		t.Errorf("initramfs stage marker = %q", got)
	}
	// The user's config is valid by the agent's own check.
	sh("sudo kairos-agent validate /oem/90_custom.yaml")
	if got := sh("sudo kairos-agent config"); !strings.Contains(got, isoCloudConfigMarker) {
		t.Errorf("kairos-agent config does not show /oem/90_custom.yaml:\n%s", got)
	}
	m.Stop()

	// The same disk under SeaBIOS: GRUB's boot sector in the MBR, its core
	// image in the bios_grub partition, then COS_STATE's menu.
	biosNode := filepath.Join(t.TempDir(), "bios-node.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", qc, biosNode)
	m, err = qemu.Start(qemu.Options{Firmware: qemu.BIOS, Disks: []string{biosNode}, LogPath: logPath(t) + ".bios"})
	must(t, err)
	if err := m.Login(ctx, diskUser, diskPassword, 6*time.Minute); err != nil {
		t.Fatal(err)
	}
	checkInstalled(t, shell(ctx, t, m), "active_boot")
}

// The raw and qcow2 disks are installed nodes: the only login is the
// user of the cloud-config they were written with (earthly.sh's
// iso-config.yaml); the image's own kairos account is locked.
const diskUser, diskPassword = "e2e", "e2e-Disk"

// shell runs commands in the logged-in session; a non-zero exit fails the
// test.
func shell(ctx context.Context, t *testing.T, m *qemu.Machine) func(string) string {
	return func(cmd string) string {
		t.Helper()
		out, code, err := m.Run(ctx, cmd, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Fatalf("%q exited %d:\n%s", cmd, code, out)
		}
		return strings.TrimSpace(out)
	}
}

// checkInstalled checks the immutable layout of an installed boot from
// inside: boot mode, read-only root image, the partitions at their places.
func checkInstalled(t *testing.T, sh func(string) string, mode string) {
	t.Helper()
	checkInstalledVersion(t, sh, mode, e2eVersion)
}

// checkInstalledVersion is checkInstalled for a node running version.
func checkInstalledVersion(t *testing.T, sh func(string) string, mode, version string) {
	t.Helper()
	if got := sh("kairos-agent state get boot"); got != mode {
		t.Errorf("kairos-agent state get boot = %q, want %q", got, mode)
	}
	sh("test -f /run/cos/" + strings.TrimSuffix(mode, "_boot") + "_mode")
	// The initramfs took the fast path (the agent as /init), not
	// dracut's systemd: the kernel log has the agent's last line.
	if got := sh("sudo journalctl -b -o cat | grep -c 'root assembled in [0-9.]*s, starting' || true"); got != "1" {
		t.Errorf("the boot did not go through the agent's initramfs path (kairos: root assembled in ...: %q lines)", got)
	}
	// /tmp is writable on the read-only root: a tmpfs, sticky.
	if got := sh("touch /tmp/e2e-tmp && stat -f -c %T /tmp && stat -c %a /tmp"); got != "tmpfs\n1777" {
		t.Errorf("/tmp: %q, want a writable tmpfs with mode 1777", got)
	}
	rootLabel, imagePart := "COS_ACTIVE", "COS_STATE"
	if mode == "recovery_boot" {
		rootLabel, imagePart = "COS_SYSTEM", "COS_RECOVERY"
	}
	if got := sh("findmnt -n -o LABEL,OPTIONS /"); !strings.HasPrefix(got, rootLabel) || !strings.Contains(got, "ro") {
		t.Errorf("/ is %q, want %s read-only", got, rootLabel)
	}
	if got := sh("sudo touch /e2e-rw-test 2>&1; echo rc=$?"); strings.HasSuffix(got, "rc=0") {
		t.Errorf("/ is writable: %q", got)
	}
	for path, label := range map[string]string{"/oem": "COS_OEM", "/usr/local": "COS_PERSISTENT", "/run/initramfs/cos-state": imagePart} {
		if got := sh("findmnt -n -o LABEL " + path + " || true"); got != label {
			t.Errorf("%s is %q, want %s mounted", path, got, label)
		}
	}
	for key, want := range map[string]string{"oem.mount_point": "/oem", "persistent.mount_point": "/usr/local", "persistent.found": "true"} {
		if got := sh("kairos-agent state get " + key); got != want {
			t.Errorf("kairos-agent state get %s = %q, want %q", key, got, want)
		}
	}
	for _, p := range []string{"/etc", "/var", "/srv"} {
		if got := sh("findmnt -n -o FSTYPE " + p); got != "overlay" {
			t.Errorf("%s is %q, want an overlay (ephemeral)", p, got)
		}
	}
	checkPersistentFills(t, sh)
	if got := sh("lsblk -n -o LABEL /dev/vda | tr -s '\\n ' ' '"); !strings.Contains(got, "COS_GRUB COS_OEM COS_RECOVERY COS_STATE COS_PERSISTENT") {
		t.Errorf("disk labels %q", got)
	}
	if got := sh(". /etc/kairos-release && echo $KAIROS_VERSION"); got != version {
		t.Errorf("KAIROS_VERSION %q, want %q", got, version)
	}
}

// checkPersistentFills: COS_PERSISTENT and its file system take the rest
// of the disk (the installer lays it out so; a disk image grows into a
// bigger disk on its first boot, /system/oem/00_rootfs.yaml), and the
// backup GPT is at the disk's end.
func checkPersistentFills(t *testing.T, sh func(string) string) {
	t.Helper()
	out := sh(`p=$(readlink -f /dev/disk/by-label/COS_PERSISTENT); p=${p##*/}; d=$(cat /sys/class/block/vda/size); ` +
		`echo $d $(cat /sys/class/block/$p/start) $(cat /sys/class/block/$p/size) ` +
		`$(sudo tune2fs -l /dev/$p | awk '/^Block count:/{c=$3} /^Block size:/{s=$3} END{printf "%.0f", c*s}') ` +
		`$(sudo dd if=/dev/vda bs=512 skip=$((d-1)) count=1 2>/dev/null | head -c 8 | tr ' ' _)`)
	var disk, start, size, fsBytes int64
	var sig string
	if _, err := fmt.Sscan(out, &disk, &start, &size, &fsBytes, &sig); err != nil {
		t.Fatalf("persistent geometry %q: %v", out, err)
	}
	t.Logf("disk %d MiB, COS_PERSISTENT %d MiB from %d MiB, its file system %d MiB", disk>>11, size>>11, start>>11, fsBytes>>20)
	if end := start + size; end < disk-33-2048 {
		t.Errorf("COS_PERSISTENT ends at sector %d of %d: it does not take the rest of the disk", end, disk)
	}
	if fsBytes != size*512 {
		t.Errorf("COS_PERSISTENT's file system has %d bytes, its partition %d", fsBytes, size*512)
	}
	if sig != "EFI_PART" {
		t.Errorf("the disk's last sector holds %q, not the backup GPT header", sig)
	}
}
