package gpt

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestReadRoundTrip: what Write puts on a disk, Read gives back, boot code
// and active flag included; on a disk that grew afterwards, Read tells that
// the backup is no longer at the end, and rewriting the same table there
// gives a disk sgdisk finds clean.
func TestReadRoundTrip(t *testing.T) {
	needTool(t, "sgdisk")
	const diskSize = 3000 * mib
	tab := kairosTable()
	tab.BootCode = bytes.Repeat([]byte{0x90}, 440)
	tab.ProtectiveBootable = true
	if err := tab.Layout(diskSize); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "disk.raw")
	writeDisk(t, img, &tab, diskSize)

	d := readDisk(t, img)
	if !reflect.DeepEqual(d.Table, tab) {
		t.Fatalf("Read gave\n%+v\nwrote\n%+v", d.Table, tab)
	}
	if d.Entries != EntryCount || d.BackupLBA != diskSize/SectorSize-1 || d.FromBackup {
		t.Errorf("Read: entries %d, backup LBA %d, from backup %v", d.Entries, d.BackupLBA, d.FromBackup)
	}

	// The disk grows by 1 GiB (a raw image flashed on a bigger disk).
	if err := os.Truncate(img, diskSize+1024*mib); err != nil {
		t.Fatal(err)
	}
	d = readDisk(t, img)
	if d.BackupLBA != diskSize/SectorSize-1 || d.FromBackup {
		t.Errorf("grown disk: backup LBA %d, from backup %v; want the old last LBA %d", d.BackupLBA, d.FromBackup, diskSize/SectorSize-1)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(f, diskSize+1024*mib); err != nil {
		t.Fatal(err)
	}
	f.Close()
	checkSgdisk(t, img, pythonUUID5["kairos-test-disk"], nil)
}

// TestReadBackup: a damaged primary header or entry array is read from
// the backup at the end of the disk.
func TestReadBackup(t *testing.T) {
	const diskSize = 3000 * mib
	tab := kairosTable()
	if err := tab.Layout(diskSize); err != nil {
		t.Fatal(err)
	}
	for name, off := range map[string]int64{"header": SectorSize + 40, "entries": 2*SectorSize + 3} {
		t.Run(name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "disk.raw")
			writeDisk(t, img, &tab, diskSize)
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{0xff}, off); err != nil {
				t.Fatal(err)
			}
			f.Close()
			d := readDisk(t, img)
			if !d.FromBackup || !reflect.DeepEqual(d.Table, tab) {
				t.Errorf("from backup %v, table %+v", d.FromBackup, d.Table)
			}
		})
	}
}

// TestReadReference: a table sgdisk made reads as sgdisk describes it.
func TestReadReference(t *testing.T) {
	needTool(t, "sgdisk")
	img := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 100*mib); err != nil {
		t.Fatal(err)
	}
	run(t, "sgdisk", "-U", pythonUUID5["kairos-test-disk"],
		"-n", "1:2048:+1M", "-t", "1:EF02", "-c", "1:bios",
		"-n", "2:0:+20M", "-t", "2:8300", "-c", "2:persistént", "-u", "2:"+pythonUUID5["COS_PERSISTENT"], img)
	d := readDisk(t, img)
	if len(d.Partitions) != 2 {
		t.Fatalf("partitions: %+v", d.Partitions)
	}
	p := d.Partitions[1]
	if p.Name != "persistént" || p.Type != LinuxFilesystem || p.GUID.String() != pythonUUID5["COS_PERSISTENT"] ||
		p.Start != 2*mib || p.Size != 20*mib || d.DiskGUID.String() != pythonUUID5["kairos-test-disk"] {
		t.Errorf("partition 2 read as %+v (disk %s)", p, d.DiskGUID)
	}
	if d.Partitions[0].Type != BIOSBoot {
		t.Errorf("partition 1 type %s", d.Partitions[0].Type)
	}
}

// TestReadRefuses: what is not a readable GPT is an error, not a guess.
func TestReadRefuses(t *testing.T) {
	const diskSize = 100 * mib
	for name, damage := range map[string]func(b []byte){
		"no MBR":        func(b []byte) { clear(b[:SectorSize]) },
		"MBR only":      func(b []byte) { b[mbrEntryOffset+4] = 0x83 },
		"both damaged":  func(b []byte) { b[SectorSize+40] ^= 1; b[diskSize-SectorSize+40] ^= 1 },
		"no signatures": func(b []byte) { clear(b[SectorSize : 2*SectorSize]); clear(b[diskSize-SectorSize:]) },
	} {
		t.Run(name, func(t *testing.T) {
			tab := Table{DiskGUID: LabelGUID("x"), Partitions: []Partition{{Name: "a", Type: LinuxFilesystem, GUID: LabelGUID("a")}}}
			if err := tab.Layout(diskSize); err != nil {
				t.Fatal(err)
			}
			b := memDisk(t, &tab, diskSize)
			damage(b)
			if d, err := Read(bytes.NewReader(b), diskSize); err == nil {
				t.Errorf("Read accepted it: %+v", d)
			}
		})
	}
}

// FuzzRead: any disk is read or refused, never a panic or a huge
// allocation, and what is read can be written back.
func FuzzRead(f *testing.F) {
	const diskSize = 64 * 1024
	tab := Table{DiskGUID: LabelGUID("x"), Partitions: []Partition{{Name: "a", Type: LinuxFilesystem, GUID: LabelGUID("a"), Start: 34 * SectorSize, Size: 8 * SectorSize}}}
	f.Add(memDisk(f, &tab, diskSize)[:40*SectorSize])
	f.Fuzz(func(t *testing.T, head []byte) {
		b := make([]byte, diskSize)
		copy(b, head)
		copy(b[diskSize-len(head)%diskSize:], head) // the same bytes as a backup copy
		d, err := Read(bytes.NewReader(b), diskSize)
		if err != nil {
			return
		}
		for _, p := range d.Partitions {
			if p.Start < 0 || p.Size <= 0 || p.End() > diskSize {
				t.Fatalf("partition outside the disk: %+v", p)
			}
		}
	})
}

func memDisk(t testing.TB, tab *Table, diskSize int64) []byte {
	t.Helper()
	w := &memWriter{b: make([]byte, diskSize)}
	if err := tab.Write(w, diskSize); err != nil {
		t.Fatal(err)
	}
	return w.b
}

type memWriter struct{ b []byte }

func (m *memWriter) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }

func readDisk(t *testing.T, img string) *Disk {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Read(f, st.Size())
	if err != nil {
		t.Fatalf("Read %s: %v", img, err)
	}
	return d
}
