package repart

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/diskfmt/ext4/ext4test"
	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
	"github.com/kairos-io/kairos/internal/diskfmt/gpt/gpttest"
)

// TestApply runs layout steps on a real block device (a loop device with
// partition scanning; root), as a node does on a disk image flashed onto a
// bigger disk: the last partition and its ext4 grow, offline and then
// mounted, its files intact; partitions are added and made; a second boot
// changes nothing. sgdisk, e2fsck and blkid judge.
func TestApply(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestApply writes loop devices: run as root")
	}
	for _, tool := range []string{"losetup", "sgdisk", "mkfs.ext4", "e2fsck", "resize2fs", "dumpe2fs", "blkid", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (util-linux gdisk e2fsprogs): %v", tool, err)
		}
	}
	img := filepath.Join(t.TempDir(), "disk.raw")
	writeTable(t, img, 64*mib)
	dev := strings.TrimSpace(sh(t, "losetup", "--find", "--show", "--partscan", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	p1, p2, p3 := dev+"p1", dev+"p2", dev+"p3"
	sh(t, "partx", "--update", dev) // this kernel may not parse GPT itself
	content := t.TempDir()
	if err := os.WriteFile(filepath.Join(content, "keep"), []byte("persistent data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sh(t, "mkfs.ext4", "-F", "-q", "-L", "COS_OEM", p1)
	sh(t, "mkfs.ext4", "-F", "-q", "-L", "COS_PERSISTENT", "-d", content, p2)

	// udev is not running here: the test makes its links.
	byLabel := t.TempDir()
	link := func(label, dev string) {
		if err := os.Symlink(dev, filepath.Join(byLabel, label)); err != nil {
			t.Fatal(err)
		}
	}
	link("COS_OEM", p1)
	link("COS_PERSISTENT", p2)
	var log bytes.Buffer
	r := &Repart{Devices: blockdev.Devices{Sys: "/sys", Dev: "/dev", Mounts: "/proc/self/mounts"}, ByLabel: byLabel, ByPartLabel: t.TempDir(), Log: &log}
	grow := cloudconfig.Layout{Device: &cloudconfig.LayoutDevice{Label: "COS_PERSISTENT"}, Expand: &cloudconfig.Expand{Size: 0}}

	// The disk grows to 128 MiB: persistent (9-63 MiB) takes the rest.
	resize(t, img, dev, 128*mib)
	if err := r.Apply(grow); err != nil {
		t.Fatalf("Apply: %v\n%s", err, log.String())
	}
	checkTable(t, img, []int64{8, 118})
	checkExt(t, p2, 118*mib)
	if got, err := exec.Command("debugfs", "-R", "cat /keep", p2).Output(); err != nil || string(got) != "persistent data\n" {
		t.Errorf("/keep after growing: %q, %v", got, err)
	}

	// Nothing to do: nothing is written (a node boots with this every time).
	before := readAll(t, img)
	log.Reset()
	if err := r.Apply(grow); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, readAll(t, img)) || !strings.Contains(log.String(), "nothing to change") {
		t.Errorf("a second Apply changed the disk; log:\n%s", log.String())
	}

	// Mounted (a boot-stage step): resize2fs alone, which grows it online.
	// This sandbox lacks CAP_SYS_RESOURCE, which the kernel's online
	// resize needs, so the tool run is recorded here (QEMU boots run it).
	resize(t, img, dev, 160*mib)
	mnt := t.TempDir()
	sh(t, "mount", p2, mnt)
	mounted := true
	defer func() {
		if mounted {
			exec.Command("umount", mnt).Run()
		}
	}()
	var ran []string
	r.Run = func(name string, args ...string) error {
		ran = append(ran, strings.Join(append([]string{name}, args...), " "))
		return nil
	}
	if err := r.Apply(grow); err != nil {
		t.Fatalf("Apply while mounted: %v\n%s", err, log.String())
	}
	r.Run = nil
	sh(t, "umount", mnt)
	mounted = false
	if strings.Join(ran, "; ") != "resize2fs "+p2 {
		t.Errorf("growing a mounted ext4 ran %q, want resize2fs alone", ran)
	}
	checkTable(t, img, []int64{8, 150})
	sh(t, "e2fsck", "-f", "-p", p2)
	sh(t, "resize2fs", p2)

	// add_partitions, found by another label of the disk: made with its
	// file system, label and GPT name; the same step again is a no-op.
	resize(t, img, dev, 200*mib)
	add := cloudconfig.Layout{Device: &cloudconfig.LayoutDevice{Label: "COS_OEM"},
		AddPartitions: []cloudconfig.AddPartition{{FSLabel: "COS_DATA", PLabel: "data", Size: 0, FileSystem: "ext4"}}}
	if err := r.Apply(add); err != nil {
		t.Fatalf("Apply: %v\n%s", err, log.String())
	}
	checkTable(t, img, []int64{8, 150, 40})
	checkExt(t, p3, 40*mib)
	if got := sh(t, "blkid", "-p", "-o", "export", p3); !strings.Contains(got, "LABEL=COS_DATA\n") || !strings.Contains(got, "TYPE=ext4\n") || !strings.Contains(got, "PART_ENTRY_NAME=data\n") {
		t.Errorf("blkid %s:\n%s", p3, got)
	}
	link("COS_DATA", p3)
	before = readAll(t, img)
	if err := r.Apply(add); err != nil || !bytes.Equal(before, readAll(t, img)) {
		t.Errorf("adding COS_DATA again: %v, or the disk changed", err)
	}

	// cloud-init's growpart: a partition that is not the last has nothing
	// to grow; the last one grows with its file system.
	resize(t, img, dev, 232*mib)
	before = readAll(t, img)
	if err := r.Grow(p1); err != nil || !bytes.Equal(before, readAll(t, img)) {
		t.Errorf("growpart of partition 1: %v, or the disk changed", err)
	}
	if err := r.Grow(p3); err != nil {
		t.Fatalf("growpart %s: %v\n%s", p3, err, log.String())
	}
	checkTable(t, img, []int64{8, 150, 72})
	checkExt(t, p3, 72*mib)
	before = readAll(t, img)

	// A tool missing from the node: refused before anything is written.
	// A grow that stops after the table (resize2fs fails, the power goes)
	// is finished by the next boot's same step.
	resize(t, img, dev, 264*mib)
	growData := cloudconfig.Layout{Device: &cloudconfig.LayoutDevice{Label: "COS_DATA"}, Expand: &cloudconfig.Expand{}}
	before = readAll(t, img)
	r.LookPath = func(name string) (string, error) {
		if name == "resize2fs" {
			return "", os.ErrNotExist
		}
		return exec.LookPath(name)
	}
	if err := r.Apply(growData); err == nil || !strings.Contains(err.Error(), "resize2fs is not on this system") || !bytes.Equal(before, readAll(t, img)) {
		t.Errorf("without resize2fs: %v, or the disk changed", err)
	}
	r.LookPath = nil
	r.Run = func(name string, args ...string) error {
		if name == "resize2fs" {
			return errors.New("interrupted")
		}
		return exec.Command(name, args...).Run()
	}
	if err := r.Apply(growData); err == nil {
		t.Fatal("Apply did not report the failed resize2fs")
	}
	r.Run = nil
	checkTable(t, img, []int64{8, 150, 104})
	log.Reset()
	if err := r.Apply(growData); err != nil {
		t.Fatalf("the next boot's Apply: %v\n%s", err, log.String())
	}
	checkExt(t, p3, 104*mib)
	before = readAll(t, img)

	// What cannot be done is refused before anything is written.
	for _, l := range []cloudconfig.Layout{
		{Device: &cloudconfig.LayoutDevice{Label: "../../" + filepath.Base(dev)}, Expand: &cloudconfig.Expand{}},
		{Device: &cloudconfig.LayoutDevice{Label: "NOPE"}, Expand: &cloudconfig.Expand{}},
		{Device: &cloudconfig.LayoutDevice{Path: p1}, Expand: &cloudconfig.Expand{}},
		{Device: &cloudconfig.LayoutDevice{Path: dev}, Expand: &cloudconfig.Expand{Size: 10}},
	} {
		if err := r.Apply(l); err == nil {
			t.Errorf("Apply(%+v) did not fail", *l.Device)
		}
		if !bytes.Equal(before, readAll(t, img)) {
			t.Fatalf("a refused Apply(%+v) changed the disk", *l.Device)
		}
	}
}

// writeTable writes oem (8 MiB) and persistent (the rest) on a new disk
// image, as the disk artifact lays them out.
func writeTable(t *testing.T, img string, size int64) {
	t.Helper()
	tab := gpt.Table{DiskGUID: gpt.LabelGUID("repart-test"), Partitions: []gpt.Partition{
		{Name: "oem", Type: gpt.LinuxFilesystem, GUID: gpt.LabelGUID("COS_OEM"), Size: 8 * mib},
		{Name: "persistent", Type: gpt.LinuxFilesystem, GUID: gpt.LabelGUID("COS_PERSISTENT")},
	}}
	if err := tab.Layout(size); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f, size); err != nil {
		t.Fatal(err)
	}
}

// resize grows the image and makes the loop device see it.
func resize(t *testing.T, img, dev string, size int64) {
	t.Helper()
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	sh(t, "losetup", "--set-capacity", dev)
}

// checkTable has sgdisk find the table clean (its backup at the end) with
// partitions of these sizes in MiB.
func checkTable(t *testing.T, img string, mibs []int64) {
	t.Helper()
	if err := gpttest.Verify(img, gpttest.Table{}); err != nil {
		t.Error(err)
	}
	tab, err := gpttest.Read(img)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, p := range tab.Partitions {
		got = append(got, (p.Last-p.First+1)*gpt.SectorSize/mib)
	}
	if !equal(got, mibs) {
		t.Errorf("sgdisk: partitions of %v MiB, want %v", got, mibs)
	}
}

// checkExt has e2fsck find the file system clean and its size fill size
// bytes.
func checkExt(t *testing.T, dev string, size int64) {
	t.Helper()
	if err := ext4test.FsckPrimary(dev); err != nil {
		t.Error(err)
	}
	out := sh(t, "dumpe2fs", "-h", dev)
	count := regexp.MustCompile(`(?m)^Block count:\s+(\d+)`).FindStringSubmatch(out)
	bs := regexp.MustCompile(`(?m)^Block size:\s+(\d+)`).FindStringSubmatch(out)
	if count == nil || bs == nil {
		t.Fatalf("dumpe2fs -h %s:\n%s", dev, out)
	}
	n, _ := strconv.ParseInt(count[1], 10, 64)
	b, _ := strconv.ParseInt(bs[1], 10, 64)
	if n*b != size {
		t.Errorf("%s: file system of %d bytes, want %d (the partition)", dev, n*b, size)
	}
}

func readAll(t *testing.T, img string) []byte {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestUnderlyingOfEncrypted: a label that resolves to an opened encrypted
// partition (dm-crypt) stands for the partition below it, whose disk the
// layout then changes.
func TestUnderlyingOfEncrypted(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(sys, "class/block/dm-0/slaves/vda5"), 0o755)
	os.MkdirAll(filepath.Join(sys, "class/block/vda5"), 0o755)
	r := &Repart{Devices: blockdev.Devices{Sys: sys, Dev: dev}}
	if got := r.underlying(filepath.Join(dev, "dm-0")); got != filepath.Join(dev, "vda5") {
		t.Errorf("underlying(dm-0) = %s, want %s/vda5", got, dev)
	}
	if got := r.underlying(filepath.Join(dev, "vda5")); got != filepath.Join(dev, "vda5") {
		t.Errorf("underlying(vda5) = %s", got)
	}
}
