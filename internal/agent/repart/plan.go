// Package repart carries out the cloud-config `layout` step: grow the last
// partition of a disk (and its file system) and add partitions after it,
// as upstream's stage language defines it. Plan decides on pure data (the
// disk's GPT as gpt.Read found it); Apply finds the disk, writes the new
// table, tells the kernel and grows or makes the file systems.
//
// The step runs on every boot (upstream ships "grow COS_PERSISTENT" in
// the rootfs stage), so a disk that needs nothing is left untouched:
// nothing is written unless a partition changes.
package repart

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
)

const mib = 1 << 20

// Disk is what Plan decides on: the table found, the disk's size, and by
// partition index the label of the file system in it ("" for none) and
// the file system's size in bytes (0 when unknown).
type Disk struct {
	*gpt.Disk
	Size     int64
	FSLabels []string
	FSBytes  []int64
}

// Change is what a layout step does to a disk. The zero Change does
// nothing.
type Change struct {
	// Table is the new table, written with its backup at the disk's end
	// when WriteTable is set.
	Table      gpt.Table
	WriteTable bool
	// Grow is the partition whose end moves (nil: none).
	Grow *Grow
	// GrowFS is the partition whose file system grows to fill it: the one
	// that grew, or one left smaller than its partition by a grow that did
	// not finish (-1: none).
	GrowFS int
	// Add are the new partitions, after the existing ones.
	Add []Add
}

// Grow is a partition growing in place: the file system in it follows.
type Grow struct {
	Index         int // in Table.Partitions
	OldSize, Size int64
}

// Add is a new partition and the file system to make in it. Existing is a
// partition an earlier boot added without getting to make its file system.
type Add struct {
	Index      int
	FSLabel    string
	FileSystem string
	Existing   bool
}

// Empty says whether the change leaves the disk as it is.
func (c Change) Empty() bool { return !c.WriteTable && c.GrowFS < 0 && len(c.Add) == 0 }

// maxMiB is the largest size in MiB whose byte count fits an int64.
const maxMiB = math.MaxInt64 / mib

// DefaultFileSystem is what add_partitions makes when filesystem is not
// given, as upstream does.
const DefaultFileSystem = "ext2"

// Plan decides what layout l does to d: expand_partition grows the last
// partition (by position on the disk) to size MiB, 0 being all the space
// up to the last MiB boundary before the backup table; then each of
// add_partitions whose file system label is not on the disk yet is placed
// after the last partition, 1 MiB aligned, size 0 again taking the rest.
// A partition never shrinks or moves.
func Plan(d Disk, l cloudconfig.Layout) (Change, error) {
	if d.Entries != gpt.EntryCount {
		return Change{}, fmt.Errorf("the partition table has %d entries: only tables of %d (what every tool writes) are changed", d.Entries, gpt.EntryCount)
	}
	c := Change{Table: d.Table, GrowFS: -1}
	c.Table.Partitions = slices.Clone(d.Partitions)
	end := usableEnd(d.Size)
	// A damaged primary, or a backup left where the disk used to end (an
	// image flashed on a bigger disk): the table is written again.
	c.WriteTable = d.FromBackup || d.BackupLBA != d.Size/gpt.SectorSize-1

	if l.Expand != nil {
		last := lastPartition(c.Table.Partitions)
		if last < 0 {
			return Change{}, errors.New("expand_partition: the disk has no partition to grow")
		}
		p := &c.Table.Partitions[last]
		size := p.Size
		switch {
		case l.Expand.Size == 0:
			if e := alignDown(end); e > p.End() {
				size = e - p.Start
			}
		case l.Expand.Size > maxMiB || int64(l.Expand.Size) > (end-p.Start)/mib:
			return Change{}, fmt.Errorf("expand_partition: %d MiB do not fit: partition %d (%q) can have at most %d MiB on this %d MiB disk",
				l.Expand.Size, last+1, p.Name, (end-p.Start)/mib, d.Size/mib)
		case int64(l.Expand.Size)*mib < p.Size:
			return Change{}, fmt.Errorf("expand_partition: partition %d (%q) has %d MiB, more than the %d MiB asked: partitions are never shrunk",
				last+1, p.Name, p.Size/mib, l.Expand.Size)
		default:
			size = int64(l.Expand.Size) * mib
		}
		if size != p.Size {
			c.Grow = &Grow{Index: last, OldSize: p.Size, Size: size}
			c.GrowFS, c.WriteTable = last, true
			p.Size = size
		} else if last < len(d.FSBytes) && d.FSBytes[last] > 0 && d.FSBytes[last] < p.Size-64<<10 {
			c.GrowFS = last
		}
	}

	labels := slices.Clone(d.FSLabels)
	for i, a := range l.AddPartitions {
		what := fmt.Sprintf("add_partitions[%d] (%s)", i, a.FSLabel)
		if a.FSLabel == "" {
			// Without a label a later boot cannot tell the partition is
			// there, and would add another on every boot.
			return Change{}, fmt.Errorf("add_partitions[%d]: fsLabel is needed", i)
		}
		if slices.Contains(labels, a.FSLabel) {
			continue // made on an earlier boot: the step is idempotent
		}
		fs := strings.ToLower(a.FileSystem)
		if fs == "" {
			fs = DefaultFileSystem
		}
		if err := checkNew(a, fs); err != nil {
			return Change{}, fmt.Errorf("%s: %w", what, err)
		}
		// An earlier boot that wrote the table and stopped before mkfs
		// left the partition, known by its GUID: only the file system is
		// made.
		if j := slices.IndexFunc(c.Table.Partitions, func(p gpt.Partition) bool { return p.GUID == gpt.LabelGUID(a.FSLabel) }); j >= 0 {
			c.Add = append(c.Add, Add{Index: j, FSLabel: a.FSLabel, FileSystem: fs, Existing: true})
			labels = append(labels, a.FSLabel)
			continue
		}
		if len(c.Table.Partitions) >= gpt.EntryCount {
			return Change{}, fmt.Errorf("%s: the table is full (%d partitions)", what, gpt.EntryCount)
		}
		start := int64(gpt.Alignment)
		if last := lastPartition(c.Table.Partitions); last >= 0 {
			start = alignUp(c.Table.Partitions[last].End())
		}
		if a.Size > maxMiB {
			return Change{}, fmt.Errorf("%s: %d MiB is not a size", what, a.Size)
		}
		size := int64(a.Size) * mib
		if a.Size == 0 {
			size = alignDown(end) - start
		}
		if size < mib || start+size > end {
			return Change{}, fmt.Errorf("%s: %d MiB do not fit: %d MiB are free after the last partition", what, a.Size, max(0, alignDown(end)-start)/mib)
		}
		p := gpt.Partition{Name: a.PLabel, Type: gpt.LinuxFilesystem, Start: start, Size: size}
		if a.Bootable {
			p.Attributes |= gpt.AttrLegacyBIOSBootable
		}
		p.GUID = newGUID(c.Table, a.FSLabel, len(c.Table.Partitions)+1)
		c.Table.Partitions = append(c.Table.Partitions, p)
		c.Add = append(c.Add, Add{Index: len(c.Table.Partitions) - 1, FSLabel: a.FSLabel, FileSystem: fs})
		c.WriteTable = true
		labels = append(labels, a.FSLabel)
	}
	if c.Empty() {
		return Change{GrowFS: -1}, nil
	}
	if err := c.Table.Validate(d.Size); err != nil {
		return Change{}, err
	}
	return c, nil
}

// checkNew checks a new partition's names against what GPT and the file
// system can hold, before anything is written.
func checkNew(a cloudconfig.AddPartition, fs string) error {
	if l := len(utf16.Encode([]rune(a.PLabel))); l > gpt.MaxNameLen {
		return fmt.Errorf("pLabel %q is %d UTF-16 units, GPT names hold %d", a.PLabel, l, gpt.MaxNameLen)
	}
	tool, ok := fileSystems[fs]
	if !ok {
		return fmt.Errorf("filesystem %q is not one of %s", a.FileSystem, strings.Join(slices.Sorted(maps.Keys(fileSystems)), ", "))
	}
	if len(a.FSLabel) > tool.maxLabel {
		return fmt.Errorf("fsLabel %q is %d bytes: %s labels hold %d", a.FSLabel, len(a.FSLabel), fs, tool.maxLabel)
	}
	if strings.ContainsAny(a.FSLabel, "/\x00") {
		return fmt.Errorf("fsLabel %q has a '/' or NUL", a.FSLabel)
	}
	return nil
}

// newGUID is the new partition's unique GUID: upstream's label GUID when
// it is free, else one derived from the disk and the partition number
// (stable, so that a retried boot writes the same table).
func newGUID(t gpt.Table, label string, n int) gpt.GUID {
	taken := func(g gpt.GUID) bool {
		return g == t.DiskGUID || slices.ContainsFunc(t.Partitions, func(p gpt.Partition) bool { return p.GUID == g })
	}
	if label != "" {
		if g := gpt.LabelGUID(label); !taken(g) {
			return g
		}
	}
	for i := 0; ; i++ {
		if g := gpt.NewSHA1GUID(t.DiskGUID, fmt.Sprintf("partition %d/%d", n, i)); !taken(g) {
			return g
		}
	}
}

// lastPartition is the index of the partition that ends last, -1 for
// none.
func lastPartition(ps []gpt.Partition) int {
	last := -1
	for i, p := range ps {
		if last < 0 || p.End() > ps[last].End() {
			last = i
		}
	}
	return last
}

// usableEnd is the byte just past the last sector a partition may use
// once the table is rewritten for a disk of size bytes.
func usableEnd(size int64) int64 {
	return size - (gpt.EntryCount*gpt.EntrySize/gpt.SectorSize+1)*gpt.SectorSize
}

func alignDown(n int64) int64 { return n / gpt.Alignment * gpt.Alignment }
func alignUp(n int64) int64   { return (n + gpt.Alignment - 1) / gpt.Alignment * gpt.Alignment }
