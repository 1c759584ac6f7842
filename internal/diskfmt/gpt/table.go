package gpt

import (
	"cmp"
	"fmt"
	"slices"
	"unicode/utf16"
)

const (
	// SectorSize is the logical sector size the table is laid out for.
	SectorSize = 512
	// Alignment is where Layout starts partitions: 1 MiB, as every current
	// partitioning tool does and as the Kairos disk contract requires.
	Alignment = 1 << 20

	// firstUsableLBA follows the MBR, the primary header and the entry array.
	firstUsableLBA = 2 + entryArraySectors
	// backupSectors is the backup entry array plus the backup header.
	backupSectors = entryArraySectors + 1

	mib = 1 << 20
)

// Table is a GPT disk layout as pure data: what Write puts on disk and
// nothing else.
type Table struct {
	// DiskGUID identifies the disk; LabelGUID gives a stable one.
	DiskGUID GUID
	// Partitions in partition-number order (the first is partition 1).
	Partitions []Partition

	// BootCode, at most 440 bytes, is put in the MBR bootstrap area, e.g.
	// GRUB's boot.img for BIOS boot. Empty leaves zeros.
	BootCode []byte
	// ProtectiveBootable sets the active flag on the protective MBR entry,
	// for legacy BIOSes that refuse disks without an active partition.
	ProtectiveBootable bool
}

// Partition is one GPT entry. Start and Size are in bytes and must be
// multiples of SectorSize.
type Partition struct {
	// Name is the GPT partition name (e.g. "efi", "oem"), at most
	// MaxNameLen UTF-16 code units.
	Name string
	// Type is the partition type GUID (EFISystem, BIOSBoot, LinuxFilesystem).
	Type GUID
	// GUID is the unique partition GUID; LabelGUID(fsLabel) gives the one
	// upstream Kairos uses.
	GUID GUID
	// Start is the byte offset of the first sector (set by Layout).
	Start int64
	// Size in bytes. In Layout, 0 on the last partition means "the rest of
	// the disk".
	Size int64
	// Attributes are the entry's attribute bits (AttrRequired, ...).
	Attributes uint64
}

// Offset is where the caller writes the partition's content.
func (p Partition) Offset() int64 { return p.Start }

// End is the byte offset just past the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// geometry is where the GPT structures of a disk of a given size go.
type geometry struct {
	totalSectors int64
	lastLBA      int64
	lastUsable   int64 // last LBA a partition may use
}

func newGeometry(diskSize int64) (geometry, error) {
	if diskSize%SectorSize != 0 {
		return geometry{}, fmt.Errorf("disk size %d is not a multiple of the %d-byte sector", diskSize, SectorSize)
	}
	g := geometry{totalSectors: diskSize / SectorSize}
	g.lastLBA = g.totalSectors - 1
	g.lastUsable = g.lastLBA - backupSectors
	if g.lastUsable < firstUsableLBA {
		return geometry{}, fmt.Errorf("disk too small: %d bytes cannot even hold the two GPT copies (%d bytes)",
			diskSize, (firstUsableLBA+backupSectors)*SectorSize)
	}
	return g, nil
}

// usableEnd is the byte offset just past the last usable sector.
func (g geometry) usableEnd() int64 { return (g.lastUsable + 1) * SectorSize }

// Layout places the partitions one after the other from 1 MiB, each start
// aligned to 1 MiB, keeping their sizes. A last partition of Size 0 takes the
// rest of the disk, up to the last 1 MiB boundary before the backup table.
// It fails, with the sizes involved, if they do not fit in diskSize bytes.
func (t *Table) Layout(diskSize int64) error {
	g, err := newGeometry(diskSize)
	if err != nil {
		return fmt.Errorf("gpt: %w", err)
	}
	start := int64(Alignment)
	for i := range t.Partitions {
		p := &t.Partitions[i]
		last := i == len(t.Partitions)-1
		switch {
		case p.Size == 0 && !last:
			return fmt.Errorf("gpt: partition %d (%q) has size 0: only the last partition can take the rest of the disk", i+1, p.Name)
		case p.Size < 0 || p.Size%SectorSize != 0:
			return fmt.Errorf("gpt: partition %d (%q): size %d is not a positive multiple of %d bytes", i+1, p.Name, p.Size, SectorSize)
		}
		p.Start = start
		if p.Size == 0 {
			end := g.usableEnd() / Alignment * Alignment
			if end-start < Alignment {
				return tooSmall(start+Alignment, diskSize, fmt.Sprintf("partition %d (%q) needs at least 1 MiB for the rest of the disk", i+1, p.Name))
			}
			p.Size = end - start
		}
		start = (p.End() + Alignment - 1) / Alignment * Alignment
	}
	return t.Validate(diskSize)
}

// Validate checks that the table can be written on a disk of diskSize
// bytes: GUIDs set and unique, names that fit, sector-aligned partitions
// inside the usable area that do not overlap.
func (t *Table) Validate(diskSize int64) error {
	g, err := newGeometry(diskSize)
	if err != nil {
		return fmt.Errorf("gpt: %w", err)
	}
	if t.DiskGUID.IsZero() {
		return fmt.Errorf("gpt: disk GUID is not set (use gpt.LabelGUID for a stable one)")
	}
	if len(t.Partitions) > EntryCount {
		return fmt.Errorf("gpt: %d partitions, at most %d fit in the entry array", len(t.Partitions), EntryCount)
	}
	if len(t.BootCode) > mbrBootCodeSize {
		return fmt.Errorf("gpt: MBR boot code is %d bytes, at most %d fit", len(t.BootCode), mbrBootCodeSize)
	}
	seen := map[GUID]int{t.DiskGUID: 0}
	for i, p := range t.Partitions {
		n := i + 1
		if l := len(utf16.Encode([]rune(p.Name))); l > MaxNameLen {
			return fmt.Errorf("gpt: partition %d: name %q is %d UTF-16 units, at most %d fit", n, p.Name, l, MaxNameLen)
		}
		if p.Type.IsZero() {
			return fmt.Errorf("gpt: partition %d (%q) has no type GUID", n, p.Name)
		}
		if p.GUID.IsZero() {
			return fmt.Errorf("gpt: partition %d (%q) has no unique GUID (use gpt.LabelGUID of its file system label)", n, p.Name)
		}
		if prev, dup := seen[p.GUID]; dup {
			what := "the disk GUID"
			if prev > 0 {
				what = fmt.Sprintf("partition %d", prev)
			}
			return fmt.Errorf("gpt: partition %d (%q) has GUID %s, already used by %s", n, p.Name, p.GUID, what)
		}
		seen[p.GUID] = n
		if p.Start%SectorSize != 0 || p.Size%SectorSize != 0 || p.Size <= 0 {
			return fmt.Errorf("gpt: partition %d (%q): start %d and size %d must be multiples of %d bytes, size positive", n, p.Name, p.Start, p.Size, SectorSize)
		}
		if p.Start < firstUsableLBA*SectorSize {
			return fmt.Errorf("gpt: partition %d (%q) starts at byte %d, inside the primary GPT (first usable byte %d)", n, p.Name, p.Start, firstUsableLBA*SectorSize)
		}
		if p.End() > g.usableEnd() {
			return tooSmall(p.End(), diskSize, fmt.Sprintf("partition %d (%q) ends at %s", n, p.Name, mibString(p.End())))
		}
	}

	order := make([]int, len(t.Partitions))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(t.Partitions[a].Start, t.Partitions[b].Start) })
	for k := 1; k < len(order); k++ {
		a, b := t.Partitions[order[k-1]], t.Partitions[order[k]]
		if b.Start < a.End() {
			return fmt.Errorf("gpt: partitions %d (%q, %s-%s) and %d (%q, %s-%s) overlap",
				order[k-1]+1, a.Name, mibString(a.Start), mibString(a.End()),
				order[k]+1, b.Name, mibString(b.Start), mibString(b.End()))
		}
	}
	return nil
}

// tooSmall reports a disk that cannot hold the partitions: end is where the
// partitions end, after which the backup GPT needs its 33 sectors.
func tooSmall(end, diskSize int64, why string) error {
	need := end + backupSectors*SectorSize
	return fmt.Errorf("gpt: disk too small: need %d MiB, have %d MiB (%s, then %d sectors of backup GPT)",
		(need+mib-1)/mib, diskSize/mib, why, backupSectors)
}

// mibString formats a byte offset in MiB, exact when it is whole.
func mibString(n int64) string {
	if n%mib == 0 {
		return fmt.Sprintf("%d MiB", n/mib)
	}
	return fmt.Sprintf("%.2f MiB", float64(n)/mib)
}
