package gpt

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/diskfmt/gpt/gpttest"
)

// Expected GUIDs computed independently with Python:
// uuid.uuid5(uuid.NAMESPACE_URL, label).
var pythonUUID5 = map[string]string{
	"COS_GRUB":         "81444E82-66B3-5ED2-961B-497665F12BE2",
	"COS_OEM":          "8BFA06F9-CA4F-56DC-90C9-49CF20F4F45E",
	"COS_RECOVERY":     "768FBD69-B2A9-5EAB-902C-DB8745B4767C",
	"COS_STATE":        "843BFE4E-83B2-5B42-BA6D-A47E3BA1262E",
	"COS_PERSISTENT":   "85C39D0F-4867-5227-8334-F5EEC606D9EB",
	"kairos-test-disk": "DA605E8C-CE53-5C69-B4CC-2FF70707892F",
}

// kairosTable is the installed-disk layout of the Kairos contract (UEFI
// variant), with a recovery size that is not a MiB multiple so that the
// alignment of the next partition is exercised.
func kairosTable() Table {
	return Table{
		DiskGUID: LabelGUID("kairos-test-disk"),
		Partitions: []Partition{
			{Name: "efi", Type: EFISystem, GUID: LabelGUID("COS_GRUB"), Size: 64 * mib, Attributes: AttrRequired},
			{Name: "oem", Type: LinuxFilesystem, GUID: LabelGUID("COS_OEM"), Size: 64 * mib},
			{Name: "recovery", Type: LinuxFilesystem, GUID: LabelGUID("COS_RECOVERY"), Size: 1000*mib + 4096},
			{Name: "state", Type: LinuxFilesystem, GUID: LabelGUID("COS_STATE"), Size: 1200 * mib},
			{Name: "persistent", Type: LinuxFilesystem, GUID: LabelGUID("COS_PERSISTENT")},
		},
	}
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not installed: ./earthly.sh +test installs the reference tools (see APT_PACKAGES)", name)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// writeDisk writes tab onto a new sparse file of diskSize bytes.
func writeDisk(t *testing.T, path string, tab *Table, diskSize int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(diskSize); err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f, diskSize); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// wantPart is what the reference tools must report for one partition.
type wantPart struct {
	name, code, fdiskType, typeGUID, guid string
	first, last                           int64 // sectors, inclusive
	attrs                                 string
}

func TestKairosLayoutWithReferenceTools(t *testing.T) {
	needTool(t, "sgdisk")
	needTool(t, "fdisk")
	const diskSize = 3 << 30
	tab := kairosTable()
	if err := tab.Layout(diskSize); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "disk.raw")
	writeDisk(t, img, &tab, diskSize)

	// 1 MiB = 2048 sectors. recovery is 1000 MiB + 8 sectors, so state starts
	// at the next MiB; persistent ends at the last MiB boundary (3071 MiB).
	efiGUID := "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	linuxGUID := "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	want := []wantPart{
		{"efi", "EF00", "EFI System", efiGUID, pythonUUID5["COS_GRUB"], 2048, 133119, "0000000000000001"},
		{"oem", "8300", "Linux filesystem", linuxGUID, pythonUUID5["COS_OEM"], 133120, 264191, "0000000000000000"},
		{"recovery", "8300", "Linux filesystem", linuxGUID, pythonUUID5["COS_RECOVERY"], 264192, 2312199, "0000000000000000"},
		{"state", "8300", "Linux filesystem", linuxGUID, pythonUUID5["COS_STATE"], 2314240, 4771839, "0000000000000000"},
		{"persistent", "8300", "Linux filesystem", linuxGUID, pythonUUID5["COS_PERSISTENT"], 4771840, 3071*2048 - 1, "0000000000000000"},
	}
	checkSgdisk(t, img, pythonUUID5["kairos-test-disk"], want)
	checkFdisk(t, img, pythonUUID5["kairos-test-disk"], want)
}

func TestBIOSLayout(t *testing.T) {
	needTool(t, "sgdisk")
	needTool(t, "fdisk")
	const diskSize = 200 * mib
	tab := Table{
		DiskGUID: LabelGUID("kairos-test-disk"),
		Partitions: []Partition{
			{Name: "bios", Type: BIOSBoot, GUID: LabelGUID("COS_GRUB"), Size: 1 * mib, Attributes: AttrRequired | AttrLegacyBIOSBootable},
			{Name: "oem", Type: LinuxFilesystem, GUID: LabelGUID("COS_OEM"), Size: 64 * mib},
		},
		BootCode:           bytes.Repeat([]byte{0x90}, 440), // stands in for GRUB's boot.img
		ProtectiveBootable: true,
	}
	if err := tab.Layout(diskSize); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "bios.raw")
	writeDisk(t, img, &tab, diskSize)
	want := []wantPart{
		{"bios", "EF02", "BIOS boot", "21686148-6449-6E6F-744E-656564454649", pythonUUID5["COS_GRUB"], 2048, 4095, "0000000000000005"},
		{"oem", "8300", "Linux filesystem", "0FC63DAF-8483-4772-8E79-3D69D8477DE4", pythonUUID5["COS_OEM"], 4096, 135167, "0000000000000000"},
	}
	checkSgdisk(t, img, pythonUUID5["kairos-test-disk"], want)
	checkFdisk(t, img, pythonUUID5["kairos-test-disk"], want)

	// The MBR view: one protective partition, active, and the boot code.
	out := run(t, "fdisk", "-l", "-t", "dos", img)
	if !regexp.MustCompile(`bios\.raw1\s+\*\s+1\s+409599\s+409599\s+200M\s+ee GPT`).MatchString(out) {
		t.Errorf("fdisk -t dos does not show an active protective partition:\n%s", out)
	}
	raw, _ := os.ReadFile(img)
	if !bytes.Equal(raw[:440], tab.BootCode) {
		t.Error("boot code not in the MBR")
	}
}

// checkSgdisk has sgdisk verify the disk (gpttest.Verify: -v finds no
// problems, -p no warnings) and read every partition as wanted.
func checkSgdisk(t *testing.T, img, diskGUID string, want []wantPart) {
	t.Helper()
	tab := gpttest.Table{GUID: diskGUID}
	for i, w := range want {
		tab.Partitions = append(tab.Partitions, gpttest.Partition{Number: i + 1, First: w.first, Last: w.last,
			Code: w.code, Name: w.name, Type: w.typeGUID, GUID: w.guid, Attributes: w.attrs})
	}
	if err := gpttest.Verify(img, tab); err != nil {
		t.Error(err)
	}
}

func checkFdisk(t *testing.T, img, diskGUID string, want []wantPart) {
	t.Helper()
	out := run(t, "fdisk", "-l", "-o", "Device,Start,End,Sectors,Type,Name,UUID", img)
	if !strings.Contains(out, "Disklabel type: gpt") || !strings.Contains(out, "Disk identifier: "+diskGUID) {
		t.Errorf("fdisk -l: not a GPT disk with identifier %s:\n%s", diskGUID, out)
	}
	if strings.Contains(out, "does not") || strings.Contains(out, "corrupt") {
		t.Errorf("fdisk -l complains:\n%s", out)
	}
	for i, w := range want {
		re := regexp.MustCompile(fmt.Sprintf(`(?m)^%s%d\s+%d\s+%d\s+%d\s+%s\s+%s\s+%s$`,
			regexp.QuoteMeta(img), i+1, w.first, w.last, w.last-w.first+1,
			regexp.QuoteMeta(w.fdiskType), regexp.QuoteMeta(w.name), w.guid))
		if !re.MatchString(out) {
			t.Errorf("fdisk -l: no row for partition %d (%s %s %s):\n%s", i+1, w.name, w.fdiskType, w.guid, out)
		}
	}
}

// The backup GPT must stand on its own: with the primary header or the
// primary entry array destroyed, sgdisk recovers the same partitions from it.
func TestBackupTable(t *testing.T) {
	needTool(t, "sgdisk")
	const diskSize = 512 * mib
	tab := kairosTable()
	tab.Partitions[2].Size = 100 * mib
	tab.Partitions[3].Size = 100 * mib
	if err := tab.Layout(diskSize); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.raw")
	writeDisk(t, good, &tab, diskSize)
	goodList, err := gpttest.Parse(run(t, "sgdisk", "-p", good))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		damage  func(f *os.File)
		message string
	}{
		{"primary header", func(f *os.File) { _, _ = f.WriteAt(make([]byte, SectorSize), SectorSize) },
			"invalid main GPT header, but valid backup"},
		{"primary entries", func(f *os.File) { _, _ = f.WriteAt([]byte{0xFF}, 2*SectorSize+100) },
			"Main partition table CRC mismatch! Loaded backup partition table"},
	} {
		img := filepath.Join(dir, "damaged.raw")
		writeDisk(t, img, &tab, diskSize)
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		tc.damage(f)
		f.Close()
		// sgdisk exits non-zero on a damaged table; only its report matters.
		out, _ := exec.Command("sgdisk", "-p", img).CombinedOutput()
		if !strings.Contains(string(out), tc.message) {
			t.Errorf("%s damaged: sgdisk did not fall back to the backup:\n%s", tc.name, out)
		}
		if got, err := gpttest.Parse(string(out)); err != nil || !reflect.DeepEqual(got, goodList) {
			t.Errorf("%s damaged: backup table lists\n%+v (%v)\nwant\n%+v", tc.name, got, err, goodList)
		}
	}
}

// Same table, same bytes: every structure Write produces is compared.
func TestDeterministic(t *testing.T) {
	const diskSize = 3 << 30
	dir := t.TempDir()
	var images [2][]byte
	for i := range images {
		tab := kairosTable()
		if err := tab.Layout(diskSize); err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(dir, fmt.Sprintf("d%d.raw", i))
		writeDisk(t, img, &tab, diskSize)
		f, _ := os.Open(img)
		head := make([]byte, firstUsableLBA*SectorSize)
		tail := make([]byte, backupSectors*SectorSize)
		_, _ = f.ReadAt(head, 0)
		_, _ = f.ReadAt(tail, diskSize-int64(len(tail)))
		f.Close()
		images[i] = append(head, tail...)
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Fatal("two writes of the same table differ")
	}
}

func TestLabelGUID(t *testing.T) {
	for label, want := range pythonUUID5 {
		if got := LabelGUID(label).String(); got != want {
			t.Errorf("LabelGUID(%q) = %s, want %s", label, got, want)
		}
	}
	// The on-disk form of the EFI System type, as every GPT tool writes it.
	wantDisk := []byte{0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B}
	if e := EFISystem.Encode(); !bytes.Equal(e[:], wantDisk) {
		t.Errorf("EFISystem on disk = % X, want % X", e, wantDisk)
	}
	if _, err := ParseGUID("not-a-guid"); err == nil {
		t.Error("ParseGUID accepted garbage")
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		diskSize int64
		edit     func(*Table)
		want     string
	}{
		{"disk too small", 2 << 30, func(*Table) {}, "disk too small: need 2332 MiB, have 2048 MiB"},
		{"no room for the rest", 2330 * mib, func(*Table) {}, "disk too small: need 2332 MiB, have 2330 MiB"},
		{"fixed partitions too big", 1 << 30, func(tb *Table) { tb.Partitions = tb.Partitions[:2]; tb.Partitions[1].Size = 1 << 30 },
			"disk too small: need 1090 MiB, have 1024 MiB"},
		{"zero size not last", 3 << 30, func(tb *Table) { tb.Partitions[1].Size = 0 }, "only the last partition"},
		{"unaligned size", 3 << 30, func(tb *Table) { tb.Partitions[1].Size = 1000 }, "not a positive multiple of 512"},
		{"duplicate GUID", 3 << 30, func(tb *Table) { tb.Partitions[1].GUID = tb.Partitions[0].GUID }, "already used by partition 1"},
		{"no GUID", 3 << 30, func(tb *Table) { tb.Partitions[1].GUID = GUID{} }, "no unique GUID"},
		{"no disk GUID", 3 << 30, func(tb *Table) { tb.DiskGUID = GUID{} }, "disk GUID is not set"},
		{"long name", 3 << 30, func(tb *Table) { tb.Partitions[0].Name = strings.Repeat("x", 37) }, "at most 36 fit"},
		{"disk not sectors", 3<<30 + 1, func(*Table) {}, "not a multiple of the 512-byte sector"},
	} {
		tab := kairosTable()
		tc.edit(&tab)
		err := tab.Layout(tc.diskSize)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}

	// Explicit placement, as Write accepts it without Layout.
	tab := kairosTable()
	if err := tab.Layout(3 << 30); err != nil {
		t.Fatal(err)
	}
	tab.Partitions[2].Start -= mib
	err := tab.Write(discard{}, 3<<30)
	if err == nil || !strings.Contains(err.Error(), `partitions 2 ("oem", 65 MiB-129 MiB) and 3 ("recovery", 128 MiB-1128.00 MiB) overlap`) {
		t.Errorf("overlap: error %v", err)
	}
	tab = kairosTable()
	_ = tab.Layout(3 << 30)
	tab.Partitions[0].Start = 16 * SectorSize
	if err := tab.Write(discard{}, 3<<30); err == nil || !strings.Contains(err.Error(), "inside the primary GPT") {
		t.Errorf("partition in the GPT area: error %v", err)
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
