package install

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/agent/crypt"
	"github.com/kairos-io/kairos/internal/agent/deploy"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/diskfmt/ext4/ext4test"
	"github.com/kairos-io/kairos/internal/diskfmt/gpt/gpttest"
	"github.com/kairos-io/kairos/internal/disklayout"
)

// The installer writes a real block device: these tests attach sparse
// files to loop devices (root, losetup with partition scanning) and judge
// the result with sgdisk, blkid, fsck.vfat, e2fsck and debugfs.

func need(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the installer tests write loop devices: run as root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (apt-get install util-linux gdisk dosfstools e2fsprogs): %v", tool, err)
		}
	}
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lockFile is the test's own agent lock: another test run on this machine
// must not make this one fail.
func lockFile(t *testing.T) string { return filepath.Join(t.TempDir(), "kairos-agent.lock") }

// loopDisk attaches a sparse file of size bytes with partition scanning.
func loopDisk(t *testing.T, size int64) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f, size); err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(sh(t, "losetup", "--find", "--show", "--partscan", f))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// imageTree is a small Kairos-like root file system.
func imageTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/kairos-release":              "KAIROS_NAME=\"kairos-test\"\nKAIROS_VERSION=\"v9.9.9\"\nKAIROS_FLAVOR=\"debian\"\n",
		"etc/cos/grub.cfg":                "# state menu\nset default=cos\n",
		"etc/cos/grub_efi.cfg":            "search --no-floppy --label --set=root COS_STATE\nconfigfile ($root)/grub2/grub.cfg\n",
		"usr/lib/kairos/boot/BOOTX64.EFI": "MZ fake efi loader",
		"usr/lib/kairos/boot/boot.img":    strings.Repeat("B", 512),
		"usr/lib/kairos/boot/core.img":    strings.Repeat("C", 40*1024),
		"boot/vmlinuz":                    "kernel",
		"boot/initrd":                     "initrd",
		"usr/share/doc/big":               strings.Repeat("data ", 200000),
		"etc/os-release":                  "ID=debian\n",
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// fakeStages records the install stages; the chroot stage leaves a file in
// the new image, as a cloud-config's files step would.
type fakeStages struct{ ran []string }

func (f *fakeStages) Has(string) bool { return true }
func (f *fakeStages) Run(_ context.Context, stage, root string) error {
	f.ran = append(f.ran, stage+"@"+root)
	if root != "/" {
		return os.WriteFile(filepath.Join(root, "etc/chroot-stage"), []byte("ran in the new image\n"), 0o644)
	}
	return nil
}

func TestInstallToDisk(t *testing.T) {
	need(t, "losetup", "sgdisk", "blkid", "fsck.vfat", "mtype", "e2fsck", "debugfs", "mkfs.ext4", "tune2fs")
	dev := loopDisk(t, 3<<30)
	tree := imageTree(t)
	var out bytes.Buffer
	st := &fakeStages{}
	in := &Installer{Devices: blockdev.Of(host.System), Out: &out, Stages: st, LiveRoot: tree, WorkDir: t.TempDir(), LockFile: lockFile(t)}
	cfg := []byte("#cloud-config\ninstall:\n  device: " + dev + "\nusers:\n  - name: tester\n    passwd: x\n")
	plan, err := in.Plan(context.Background(), Options{Device: dev, Config: cfg, GrubEnv: map[string]string{"extra_cmdline": "quiet"}})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	if err := in.Run(context.Background(), plan); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
	for _, want := range []string{"installing kairos-test v9.9.9 to " + dev, "partition table (GPT, 6 partitions)", "active.img: 100%", "passive.img (COS_PASSIVE): copy of active.img", "done in"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress lacks %q", want)
		}
	}
	if got := strings.Join(st.ran, " "); !strings.HasPrefix(got, "before-install@/ after-install-chroot@") || !strings.HasSuffix(got, " after-install@/") {
		t.Errorf("stages ran: %s", got)
	}

	// sgdisk finds no problems, and the partitions in order.
	var table gpttest.Table
	for _, name := range []string{"efi", "bios", "oem", "recovery", "state", "persistent"} {
		table.Partitions = append(table.Partitions, gpttest.Partition{Name: name})
	}
	if err := gpttest.Verify(dev, table); err != nil {
		t.Error(err)
	}
	part := func(n int) string { return dev + "p" + string(rune('0'+n)) }
	for n, label := range map[int]string{1: "COS_GRUB", 3: "COS_OEM", 4: "COS_RECOVERY", 5: "COS_STATE", 6: "COS_PERSISTENT"} {
		if got := strings.TrimSpace(sh(t, "blkid", "-o", "value", "-s", "LABEL", part(n))); got != label {
			t.Errorf("partition %d label %q, want %s", n, got, label)
		}
		if n == 1 {
			sh(t, "fsck.vfat", "-n", part(n))
		} else if err := ext4test.FsckPrimary(part(n)); err != nil { // mkfs.ext4 and mounts leave backups stale
			t.Error(err)
		}
	}
	// BIOS: the MBR boot code points at the core image in bios_grub, whose
	// blocklist points at its second sector.
	disk, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	mbr := make([]byte, 512)
	disk.ReadAt(mbr, 0)
	bios := plan.Layout.Part(disklayout.PartBIOS)
	if lba := binary.LittleEndian.Uint64(mbr[0x5c:]); lba != uint64(bios.Start/512) {
		t.Errorf("MBR loads the core image from LBA %d, bios_grub starts at %d", lba, bios.Start/512)
	}
	core := make([]byte, 512)
	disk.ReadAt(core, bios.Start)
	if lba := binary.LittleEndian.Uint64(core[500:]); lba != uint64(bios.Start/512+1) {
		t.Errorf("core blocklist %d", lba)
	}
	disk.Close()

	mnt := func(p string) string {
		dir := t.TempDir()
		sh(t, "mount", "-o", "ro", p, dir)
		t.Cleanup(func() { exec.Command("umount", dir).Run() })
		return dir
	}
	if data := sh(t, "mtype", "-i", part(1), "::/EFI/BOOT/BOOTX64.EFI"); !strings.HasSuffix(data, "MZ fake efi loader") {
		t.Errorf("ESP loader %q", data)
	}
	state := mnt(part(5))
	if data, _ := os.ReadFile(filepath.Join(state, "grub2/grub.cfg")); string(data) != "# state menu\nset default=cos\n" {
		t.Errorf("state grub.cfg %q", data)
	}
	for _, f := range []string{"grub_oem_env", "boot_assessment"} {
		if data, _ := os.ReadFile(filepath.Join(state, f)); !bytes.HasPrefix(data, []byte("# GRUB Environment Block\n")) || len(data) != 1024 {
			t.Errorf("%s is not an empty grubenv", f)
		}
	}
	recovery := mnt(part(4))
	for img, label := range map[string]string{
		filepath.Join(state, "cOS/active.img"): "COS_ACTIVE", filepath.Join(state, "cOS/passive.img"): "COS_PASSIVE",
		filepath.Join(recovery, "cOS/recovery.img"): "COS_SYSTEM",
	} {
		if got := strings.TrimSpace(sh(t, "blkid", "-o", "value", "-s", "LABEL", img)); got != label {
			t.Errorf("%s label %q, want %s", img, got, label)
		}
		if err := ext4test.Fsck(img); err != nil {
			t.Error(err)
		}
		if got, err := ext4test.ReadFile(img, "/etc/kairos-release"); !strings.Contains(string(got), `KAIROS_VERSION="v9.9.9"`) {
			t.Errorf("%s: kairos-release %q (%v)", img, got, err)
		}
		// The chroot stage ran before the copies were made.
		if got, err := ext4test.ReadFile(img, "/etc/chroot-stage"); !strings.Contains(string(got), "ran in the new image") {
			t.Errorf("%s: chroot stage file %q (%v)", img, got, err)
		}
	}
	oem := mnt(part(3))
	if data, _ := os.ReadFile(filepath.Join(oem, "90_custom.yaml")); !bytes.Equal(data, cfg) {
		t.Errorf("90_custom.yaml %q", data)
	}
	if st, _ := os.Stat(filepath.Join(oem, "90_custom.yaml")); st.Mode().Perm() != 0o600 {
		t.Errorf("90_custom.yaml mode %v", st.Mode())
	}
	if data, _ := os.ReadFile(filepath.Join(oem, "grubenv")); !bytes.Contains(data, []byte("\nextra_cmdline=quiet\n")) {
		t.Errorf("grubenv %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(oem, "install.log")); !bytes.Contains(data, []byte(dev+" written in")) {
		t.Errorf("install.log %q", data)
	}
}

func TestInstallRefusals(t *testing.T) {
	need(t, "losetup", "mkfs.ext4")
	tree := imageTree(t)
	ctx := context.Background()
	in := &Installer{Devices: blockdev.Of(host.System), LiveRoot: tree, WorkDir: t.TempDir(), LockFile: lockFile(t)}

	small := loopDisk(t, 1<<30)
	_, err := in.Plan(ctx, Options{Device: small})
	if err == nil || !strings.Contains(err.Error(), "a disk of 1024 MiB is too small for this image: it needs at least") {
		t.Errorf("small disk: %v", err)
	}
	head := make([]byte, 1<<20)
	f, _ := os.Open(small)
	f.ReadAt(head, 0)
	f.Close()
	if !bytes.Equal(head, make([]byte, len(head))) {
		t.Error("the refused disk was written")
	}

	if _, err := in.Plan(ctx, Options{Device: small, Partitions: disklayout.Sizes{"state": 10 << 20}}); err == nil || !strings.Contains(err.Error(), "state partition of 10 MiB is too small") {
		t.Errorf("state override: %v", err)
	}

	used := loopDisk(t, 3<<30)
	sh(t, "mkfs.ext4", "-q", used)
	dir := t.TempDir()
	sh(t, "mount", used, dir)
	defer exec.Command("umount", dir).Run()
	if _, err := in.Plan(ctx, Options{Device: used}); err == nil || !strings.Contains(err.Error(), "is in use (mounted at "+dir) {
		t.Errorf("mounted disk: %v", err)
	}

	// Encryption asked on a machine without a TPM: refused before the
	// disk is chosen or written.
	in.Crypt = &crypt.Tools{Sys: t.TempDir(), Dev: t.TempDir()}
	_, err = in.Plan(ctx, Options{Device: small, Encrypt: []string{"COS_PERSISTENT", "COS_OEM"}})
	if err == nil || !errors.Is(err, crypt.ErrNoTPM) || !strings.Contains(err.Error(), "install.encrypted_partitions asks to encrypt COS_PERSISTENT, COS_OEM") ||
		!strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("encryption without a TPM: %v", err)
	}
	in.Crypt = nil

	if _, err := in.Plan(ctx, Options{Device: "/dev/null"}); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("/dev/null: %v", err)
	}
	// While an upgrade or another install runs.
	release, err := deploy.Lock(in.LockFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Plan(ctx, Options{Device: small}); err == nil || !strings.Contains(err.Error(), "another kairos-agent install/upgrade/reset is running") {
		t.Errorf("locked: %v", err)
	}
	release()
	// Without the initrd grub boots (the check upgrade shares).
	initrd, _ := os.ReadFile(filepath.Join(tree, "boot/initrd"))
	os.Remove(filepath.Join(tree, "boot/initrd"))
	if _, err := in.Plan(ctx, Options{Device: small}); err == nil || !strings.Contains(err.Error(), "has no /boot/initrd") {
		t.Errorf("no initrd: %v", err)
	}
	os.WriteFile(filepath.Join(tree, "boot/initrd"), initrd, 0o644)
	os.Remove(filepath.Join(tree, "etc/kairos-release"))
	if _, err := in.Plan(ctx, Options{Device: small}); err == nil || !strings.Contains(err.Error(), "not a Kairos image") {
		t.Errorf("no kairos-release: %v", err)
	}
	in.LiveRoot = filepath.Join(tree, "nope")
	if _, err := in.Plan(ctx, Options{Device: small}); err == nil || !strings.Contains(err.Error(), "not running from live media") {
		t.Errorf("no live root: %v", err)
	}
}

func TestFromConfigAndAnswers(t *testing.T) {
	a := Answers{Device: "/dev/vda", User: "ops", Password: "pw", K3s: true}
	data, err := a.Config()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	got, err := Ask(strings.NewReader("/dev/vdb\nops\npw\n\ny\nyes\n"), &out, nil, []blockdev.Disk{{Path: "/dev/vda", Size: 16 << 30}})
	if err != nil || got.Device != "/dev/vdb" || got.User != "ops" || got.Password != "pw" || !got.K3s || got.SSHKey != "" {
		t.Errorf("Ask = %+v, %v", got, err)
	}
	if !strings.Contains(out.String(), "/dev/vda            16384 MiB") || !strings.Contains(out.String(), "Disk to install to [/dev/vda]") {
		t.Errorf("prompts:\n%s", out.String())
	}
	if _, err := Ask(strings.NewReader("\n\n\n\nn\nn\n"), &out, nil, []blockdev.Disk{{Path: "/dev/vda"}}); err == nil || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("not confirmed: %v", err)
	}
	if !strings.HasPrefix(string(data), "#cloud-config\n") || !strings.Contains(string(data), "device: /dev/vda") || !strings.Contains(string(data), "enabled: true") {
		t.Errorf("config:\n%s", data)
	}
}
