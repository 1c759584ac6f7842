package artifacts

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/ext4/ext4test"
	"github.com/kairos-io/kairos/internal/diskfmt/fat/fattest"
	"github.com/kairos-io/kairos/internal/diskfmt/gpt/gpttest"
	"github.com/kairos-io/kairos/internal/diskfmt/qcow2/qcow2test"
	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/overlay"
)

// diskImage is a bootable test image with the installed-system menus the
// overlay ships in every image.
func diskImage(t *testing.T) *fstree.Node {
	root := bootable(image(true))
	files, err := overlay.Tree("rootfs")
	if err != nil {
		t.Fatal(err)
	}
	var cos []*fstree.Node
	for _, f := range files {
		if strings.HasPrefix(f.Path, "etc/cos/") {
			cos = append(cos, file(filepath.Base(f.Path), string(f.Data)))
		}
	}
	if len(cos) != 2 {
		t.Fatalf("overlay/rootfs/etc/cos holds %d files, want grub.cfg and grub_efi.cfg", len(cos))
	}
	for _, c := range root.Children {
		if c.Name == "etc" {
			c.Children = append(c.Children, dir("cos", cos...))
		}
	}
	// GRUB's BIOS pair, as the finalize step leaves it: a boot sector, and
	// a core image whose first sector ends with its blocklist (start 2, 2
	// more sectors, segment 0x820).
	core := make([]byte, 3*512)
	copy(core[512-12:], []byte{2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x20, 0x08})
	core[512] = 'C'
	boot := make([]byte, 512)
	boot[0], boot[0x5c] = 0xeb, 1
	for _, c := range root.Children {
		if c.Name == "usr" {
			kb := c.Children[0].Children[0].Children[0] // usr/lib/kairos/boot
			kb.Children = append(kb.Children, file("core.img", string(core)), file("boot.img", string(boot)))
		}
	}
	return root
}

// TestDisk checks the raw and qcow2 disks with the reference tools: the
// partition table (sgdisk), labels and file system types (blkid), every
// file system (fsck.vfat, e2fsck), the files the boot path relies on
// (debugfs, mtools, grub-editenv), and the qcow2 (qemu-img check, and
// compare against our raw).
func TestDisk(t *testing.T) {
	out := t.TempDir()
	cc := "#cloud-config\nhostname: disk-test\n"
	epoch := time.Unix(1700000000, 0)
	files, err := Run(context.Background(), diskImage(t), out, Profile{Kinds: []string{KindRaw, KindQcow2}, CloudConfig: []byte(cc), Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if got := strings.Join(names, " "); got != "kairos-test-v1.raw kairos-test-v1.raw.sha256 kairos-test-v1.qcow2 kairos-test-v1.qcow2.sha256" {
		t.Errorf("files %s", got)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	raw := filepath.Join(out, "kairos-test-v1.raw")
	st, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size()%(1<<30) != 0 {
		t.Errorf("default disk size %d is not whole GiB", st.Size())
	}

	want := []struct{ name, label, fs string }{
		{"efi", "COS_GRUB", "vfat"}, {"bios", "", ""}, {"oem", "COS_OEM", "ext4"}, {"recovery", "COS_RECOVERY", "ext4"},
		{"state", "COS_STATE", "ext4"}, {"persistent", "COS_PERSISTENT", "ext4"},
	}
	// sgdisk finds no problems; the partitions in order, the first at
	// 1 MiB, the second a BIOS boot partition.
	var wantTable gpttest.Table
	for _, w := range want {
		wantTable.Partitions = append(wantTable.Partitions, gpttest.Partition{Name: w.name})
	}
	wantTable.Partitions[0].First = 1 << 20 / 512
	wantTable.Partitions[1].Type = "21686148-6449-6E6F-744E-656564454649"
	if err := gpttest.Verify(raw, wantTable); err != nil {
		t.Fatal(err)
	}
	table, err := gpttest.Read(raw)
	if err != nil {
		t.Fatal(err)
	}
	parts := table.Partitions
	byLabel := map[string]gpttest.Partition{}
	for i, w := range want {
		p := parts[i]
		if w.label == "" {
			continue
		}
		blk, err := exec.Command("blkid", "-p", "-o", "export", "-O", fmt.Sprint(p.First*512), raw).CombinedOutput()
		if err != nil || !strings.Contains(string(blk), "LABEL="+w.label+"\n") || !strings.Contains(string(blk), "TYPE="+w.fs+"\n") {
			t.Errorf("blkid of partition %d (%s): %v\n%s", p.Number, w.name, err, blk)
		}
		byLabel[w.label] = p
	}

	// BIOS: the MBR boot code points at the core image in the bios_grub
	// partition, and the core's blocklist at its own second sector.
	bios := parts[1].First * 512
	mbr, core := readAt(t, raw, 0, 512), readAt(t, raw, bios, 1024)
	if got := binary.LittleEndian.Uint64(mbr[0x5c:]); int64(got) != bios/512 || mbr[0] != 0xeb {
		t.Errorf("MBR boot code loads sector %d (first byte %#x), want the bios partition at %d", got, mbr[0], bios/512)
	}
	if got := binary.LittleEndian.Uint64(core[500:]); int64(got) != bios/512+1 || core[512] != 'C' {
		t.Errorf("core image blocklist starts at %d, want %d", got, bios/512+1)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa || mbr[446] != 0x80 {
		t.Errorf("protective MBR: signature %x %x, boot flag %#x", mbr[510], mbr[511], mbr[446])
	}

	// Every file system is clean.
	esp := extract(t, raw, byLabel["COS_GRUB"])
	if _, err := fattest.Fsck(esp); err != nil {
		t.Errorf("COS_GRUB: %v", err)
	}
	if dir, err := fattest.List(esp); err != nil || !slices.Contains(dir, "::/EFI/BOOT/BOOTX64.EFI") || !slices.Contains(dir, "::/EFI/BOOT/grub.cfg") {
		t.Errorf("ESP listing: %v\n%s", err, dir)
	}
	fsAt := func(label string) string { return fmt.Sprintf("%s?offset=%d", raw, byLabel[label].First*512) }
	for _, label := range []string{"COS_OEM", "COS_RECOVERY", "COS_STATE", "COS_PERSISTENT"} {
		if err := ext4test.Fsck(fsAt(label)); err != nil {
			t.Errorf("%s: %v", label, err)
		}
	}

	// The files the boot path and the agent rely on.
	cat := func(label, path string) string {
		t.Helper()
		out, err := ext4test.ReadFile(fsAt(label), path)
		if err != nil {
			t.Errorf("%s: %v", label, err)
		}
		return string(out)
	}
	if got := cat("COS_OEM", "/90_custom.yaml"); got != cc {
		t.Errorf("/oem/90_custom.yaml = %q, want the cloud-config", got)
	}
	menu, _ := overlay.Tree("rootfs")
	for _, f := range menu {
		if f.Path == "etc/cos/grub.cfg" && cat("COS_STATE", "/grub2/grub.cfg") != string(f.Data) {
			t.Errorf("COS_STATE /grub2/grub.cfg is not the image's /etc/cos/grub.cfg")
		}
	}
	tmp := t.TempDir()
	for label, env := range map[string]string{"COS_OEM": "/grubenv", "COS_STATE": "/boot_assessment"} {
		dst := filepath.Join(tmp, filepath.Base(env))
		if err := ext4test.Dump(fsAt(label), env, dst); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("grub-editenv", dst, "list").CombinedOutput(); err != nil {
			t.Errorf("grub-editenv %s on %s: %v\n%s", env, label, err, out)
		}
	}
	if ls, err := ext4test.Debugfs(fsAt("COS_RECOVERY"), "ls -p /cOS"); err != nil || !strings.Contains(ls[0], "/recovery.img/") {
		t.Errorf("COS_RECOVERY /cOS: %v\n%s", err, ls)
	}
	for _, img := range []struct{ file, label, part string }{{"active.img", "COS_ACTIVE", "COS_STATE"}, {"passive.img", "COS_PASSIVE", "COS_STATE"}, {"recovery.img", "COS_SYSTEM", "COS_RECOVERY"}} {
		dst := filepath.Join(tmp, img.file)
		if err := ext4test.Dump(fsAt(img.part), "/cOS/"+img.file, dst); err != nil {
			t.Fatal(err)
		}
		// The image's tree, /boot/vmlinuz-6.1.0 (KERNEL) included.
		if err := ext4test.Verify(dst, diskImage(t)); err != nil {
			t.Errorf("%s: %v", img.file, err)
		}
		if blk, _ := exec.Command("blkid", "-p", "-o", "export", dst).CombinedOutput(); !strings.Contains(string(blk), "LABEL="+img.label+"\n") {
			t.Errorf("%s is not labeled %s:\n%s", img.file, img.label, blk)
		}
	}

	qc := filepath.Join(out, "kairos-test-v1.qcow2")
	if err := qcow2test.Verify(qc, raw); err != nil {
		t.Error(err)
	}
	if qst, err := os.Stat(qc); err != nil || qst.Size() > st.Size()/4 {
		t.Errorf("qcow2 of %d bytes for a %d-byte disk: zero clusters stored? (%v)", qst.Size(), st.Size(), err)
	}
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// extract copies a partition to a file of its own (fsck.vfat has no offset
// option).
func extract(t *testing.T, disk string, p gpttest.Partition) string {
	t.Helper()
	src, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(t.TempDir(), fmt.Sprintf("part%d.img", p.Number))
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, io.NewSectionReader(src, p.First*512, (p.Last-p.First+1)*512)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestReproducible writes every kind twice from the same tree and epoch:
// the bytes must match.
func TestReproducible(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	sums := map[string]string{}
	for i := range 2 {
		out := t.TempDir()
		files, err := Run(context.Background(), diskImage(t), out, Profile{Kinds: Kinds, Epoch: epoch, CloudConfig: []byte("#cloud-config\n")})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if !strings.HasSuffix(f, ".sha256") {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(f)
			if i == 0 {
				sums[name] = string(data)
			} else if sums[name] != string(data) {
				t.Errorf("%s differs between two runs: %q vs %q", name, sums[name], data)
			}
		}
	}
	for _, k := range []string{".iso", ".squashfs", ".raw", ".qcow2", "-kernel", "-initrd", ".ipxe"} {
		if _, ok := sums["kairos-test-v1"+k+".sha256"]; !ok {
			t.Errorf("no %s artifact: %v", k, sums)
		}
	}
}

// TestDiskTooSmall: a disk size that cannot hold the image fails before the
// disk is written, naming both sizes, and leaves nothing behind.
func TestDiskTooSmall(t *testing.T) {
	out := t.TempDir()
	_, err := Run(context.Background(), diskImage(t), out, Profile{Kinds: []string{KindRaw}, DiskSize: 100 << 20})
	if err == nil || !regexp.MustCompile(`a disk of 100 MiB is too small for this image: it needs at least \d+ MiB \(COS_GRUB 64 MiB`).MatchString(err.Error()) {
		t.Fatalf("err %v", err)
	}
	if left, _ := os.ReadDir(out); len(left) > 0 {
		t.Errorf("files left behind: %v", left)
	}
}
