// Package disklayout is the installed disk of the Kairos contract
// (kairos-contracts.md, "Installed disk"): partitions, labels, sizes and the
// boot files on them. The disk-image writer (kairos artifacts raw/qcow2) and
// the node installer (kairos-agent install) both plan with it, so a disk
// image and an installed node are the same disk.
package disklayout

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
)

// File system labels of the contract.
const (
	LabelGrub       = "COS_GRUB"
	LabelOEM        = "COS_OEM"
	LabelRecovery   = "COS_RECOVERY"
	LabelState      = "COS_STATE"
	LabelPersistent = "COS_PERSISTENT"
	LabelActive     = "COS_ACTIVE"
	LabelPassive    = "COS_PASSIVE"
	LabelSystem     = "COS_SYSTEM"
	// LabelBIOS names the bios_grub partition (it has no file system).
	LabelBIOS = "COS_BIOS"
)

// Partition names (GPT names, and keys of install.partitions).
const (
	PartEFI        = "efi"
	PartBIOS       = "bios"
	PartOEM        = "oem"
	PartRecovery   = "recovery"
	PartState      = "state"
	PartPersistent = "persistent"
)

const (
	MiB = int64(1) << 20
	GiB = int64(1) << 30
)

// Sizes of the contract. The image size (active.img) is the root file
// system plus ImageHeadroom; state holds active, passive and room for an
// upgrade's transition image plus stateSpare; recovery holds the recovery
// image and room for its upgrade plus recoverySpare.
const (
	ESPSize        = 64 * MiB
	BIOSSize       = 1 * MiB
	OEMSize        = 64 * MiB
	ImageHeadroom  = 100 * MiB
	stateSpare     = 1000 * MiB
	recoverySpare  = 200 * MiB
	PersistentSize = 2 * GiB // when no disk size is given
	MinPersistent  = 64 * MiB
	// gptReserve covers the 1 MiB before the first partition and the
	// backup GPT at the end.
	gptReserve = 2 * MiB
)

// Image is one system image: active and passive on COS_STATE, recovery on
// COS_RECOVERY. Each is ext4 with its own label, which is how the
// initramfs finds the loop-mounted root (root=LABEL=...).
type Image struct{ File, Label, Part string }

var (
	Active   = Image{"active.img", LabelActive, PartState}
	Passive  = Image{"passive.img", LabelPassive, PartState}
	Recovery = Image{"recovery.img", LabelSystem, PartRecovery}
	// Images in the order they are written.
	Images = []Image{Active, Passive, Recovery}
)

// ImageDir is the directory of the images on their partitions.
const ImageDir = "cOS"

// ImageSize is the size of a system image holding a root file system that
// needs rootfs bytes.
func ImageSize(rootfs int64) int64 { return RoundUp(rootfs+ImageHeadroom, MiB) }

// Sizes are partition sizes in bytes by partition name; 0 means the
// contract's default.
type Sizes map[string]int64

// Input is what a disk plan needs.
type Input struct {
	// ImageSize is the size of active.img (ImageSize of the root fs).
	ImageSize int64
	// DiskSize is the disk's size; 0 plans the smallest disk with the
	// default persistent partition, rounded up to a GiB (disk images).
	DiskSize int64
	// Sizes override the defaults (install.partitions); a size below what
	// the partition must hold is refused.
	Sizes Sizes
	// Min raises the default of a partition to hold its content.
	Min Sizes
	// BIOS adds the bios_grub partition for GRUB's core image.
	BIOS bool
}

// Part is one planned partition.
type Part struct {
	Name, Label string
	Type        gpt.GUID
	Start, Size int64
}

// Layout is a planned disk.
type Layout struct {
	DiskSize int64
	Parts    []Part
	Table    *gpt.Table
}

// Part returns the partition named name, nil when the layout has none.
func (l *Layout) Part(name string) *Part {
	for i := range l.Parts {
		if l.Parts[i].Name == name {
			return &l.Parts[i]
		}
	}
	return nil
}

// String lists the partitions' labels and sizes.
func (l *Layout) String() string { return sizes(l.Parts) }

// Index is the partition number (1-based) of name, 0 when absent.
func (l *Layout) Index(name string) int {
	for i := range l.Parts {
		if l.Parts[i].Name == name {
			return i + 1
		}
	}
	return 0
}

// Plan lays the contract's partitions out on the disk, or says why the
// disk cannot hold them (with every size), before anything is written.
func Plan(in Input) (*Layout, error) {
	parts, fixed, minPersistent, err := partSizes(in)
	if err != nil {
		return nil, err
	}
	persistent := parts[len(parts)-1]
	diskSize := in.DiskSize
	if diskSize == 0 {
		diskSize = RoundUp(fixed+max(persistent.Size, PersistentSize), GiB)
	}
	if diskSize < fixed+minPersistent {
		return nil, fmt.Errorf("a disk of %d MiB is too small for this image: it needs at least %d MiB (%s, and %d MiB for %s)",
			diskSize>>20, RoundUp(fixed+minPersistent, MiB)>>20, sizes(parts[:len(parts)-1]), minPersistent>>20, LabelPersistent)
	}
	diskSize &^= gpt.SectorSize - 1

	table := &gpt.Table{DiskGUID: gpt.LabelGUID("COS_DISK"), ProtectiveBootable: in.BIOS}
	for _, p := range parts {
		table.Partitions = append(table.Partitions, gpt.Partition{Name: p.Name, Type: p.Type, GUID: gpt.LabelGUID(p.Label), Size: p.Size})
	}
	if err := table.Layout(diskSize); err != nil {
		return nil, err
	}
	for i := range parts {
		parts[i].Start = table.Partitions[i].Start
		parts[i].Size = table.Partitions[i].Size
	}
	return &Layout{DiskSize: diskSize, Parts: parts, Table: table}, nil
}

// MinDiskSize is the smallest disk Plan accepts for in (DiskSize ignored).
func MinDiskSize(in Input) (int64, error) {
	_, fixed, minPersistent, err := partSizes(in)
	if err != nil {
		return 0, err
	}
	return RoundUp(fixed+minPersistent, MiB), nil
}

// partSizes sizes every partition; the last (persistent) keeps size 0
// when it takes the rest of the disk. fixed is the space the others and
// the GPT take, minPersistent the least persistent may have.
func partSizes(in Input) (parts []Part, fixed, minPersistent int64, err error) {
	if in.ImageSize <= 0 {
		return nil, 0, 0, fmt.Errorf("disk plan: image size is not set")
	}
	// What each partition must hold: state two images and the transition
	// of an upgrade, recovery its image and the transition of a recovery
	// upgrade.
	need := map[string]int64{
		PartState:    3 * in.ImageSize,
		PartRecovery: 2 * in.ImageSize,
		PartOEM:      8 * MiB,
	}
	parts = []Part{
		{Name: PartEFI, Label: LabelGrub, Type: gpt.EFISystem, Size: ESPSize},
		{Name: PartOEM, Label: LabelOEM, Type: gpt.LinuxFilesystem, Size: OEMSize},
		{Name: PartRecovery, Label: LabelRecovery, Type: gpt.LinuxFilesystem, Size: 2*in.ImageSize + recoverySpare},
		{Name: PartState, Label: LabelState, Type: gpt.LinuxFilesystem, Size: 3*in.ImageSize + stateSpare},
		{Name: PartPersistent, Label: LabelPersistent, Type: gpt.LinuxFilesystem},
	}
	if in.BIOS {
		parts = slices.Insert(parts, 1, Part{Name: PartBIOS, Label: LabelBIOS, Type: gpt.BIOSBoot, Size: BIOSSize})
	}
	for name := range in.Sizes {
		if !slices.ContainsFunc(parts, func(p Part) bool { return p.Name == name }) {
			return nil, 0, 0, fmt.Errorf("unknown partition %q (valid: oem, recovery, state, persistent)", name)
		}
	}
	for i := range parts {
		p := &parts[i]
		if m := in.Min[p.Name]; m > p.Size {
			p.Size = RoundUp(m, MiB)
		}
		if m := in.Min[p.Name]; m > need[p.Name] {
			need[p.Name] = m
		}
		if s, ok := in.Sizes[p.Name]; ok && s > 0 {
			if p.Name == PartEFI || p.Name == PartBIOS {
				return nil, 0, 0, fmt.Errorf("the %s partition has a fixed size of %d MiB", p.Name, p.Size>>20)
			}
			if s < need[p.Name] {
				return nil, 0, 0, fmt.Errorf("%s partition of %d MiB is too small: it must hold %d MiB", p.Name, s>>20, RoundUp(need[p.Name], MiB)>>20)
			}
			p.Size = RoundUp(s, MiB)
		}
	}
	fixed = gptReserve
	for _, p := range parts[:len(parts)-1] {
		fixed += p.Size
	}
	minPersistent = MinPersistent
	if s := parts[len(parts)-1].Size; s > 0 {
		minPersistent = s
	}
	return parts, fixed, minPersistent, nil
}

func sizes(parts []Part) string {
	var s []string
	for _, p := range parts {
		s = append(s, fmt.Sprintf("%s %d MiB", p.Label, p.Size>>20))
	}
	return strings.Join(s, ", ")
}

// RoundUp rounds n up to a multiple of to.
func RoundUp(n, to int64) int64 { return (n + to - 1) / to * to }
