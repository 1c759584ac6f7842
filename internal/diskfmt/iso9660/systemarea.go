package iso9660

import (
	"encoding/binary"

	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
)

// The System Area (the first 32 KiB, ECMA-119 6.2.1) is free for the
// platform. A hybrid ISO puts a disk's boot structures there, so that the
// same file boots when written to a USB stick: an MBR with BIOS boot code
// and a partition table, and a GPT whose EFI System Partition UEFI firmware
// boots from. The layout is the one libisofs (xorriso) writes for
// --grub2-mbr, --protective-msdos-label and -efi-boot-part --efi-boot-image
// or -append_partition 2 0xef -appended_part_as_gpt (libisofs
// doc/boot_sectors.txt):
//
//   - MBR (sector 0): GRUB's boot_hybrid.img code with the 512-byte sector
//     of core.img patched at 0x1B0; partition 1 of type 0xEE from sector 1
//     to the end of the image (UEFI 2.10 5.2.3 protective MBR), or, without
//     a GPT, a bootable partition 1 of type 0xCD (grub-mkrescue's).
//   - GPT header (sector 1) and a 248-entry array filling sectors 2-63, so
//     that the first usable sector, 64, is the first after the System Area.
//   - Partitions: "Gap0" (Basic Data) from sector 64 to the ESP, the ESP,
//     and "Gap1" (Basic Data) from the ESP to the end of the ISO data. The
//     gaps protect the ISO 9660 file system from partitioning tools;
//     nothing mounts them. An in-tree ESP is "EFI boot partition" and the
//     gaps and it are flagged required + read-only (bits 0 and 60), as
//     libisofs does; an appended one is "Appended2", unflagged.
//   - Backup GPT in a 32 KiB tail at the very end: one unused sector, the
//     entry array, then the backup header in the last sector.

const (
	systemAreaSize = firstVDLBA * BlockSize

	mbrCodeSize    = 440
	mbrTableOffset = 446
	mbrTypeGPT     = 0xEE
	mbrTypeGRUB    = 0xCD // grub-mkrescue's type for the image partition
	mbrActive      = 0x80

	// gptEntries fill sectors 2-63 (248 entries), which puts the first
	// usable sector right after the System Area.
	gptEntries     = (systemAreaSize/sectorSize - 2) * sectorSize / gpt.EntrySize
	gptFirstUsable = systemAreaSize / sectorSize // 64
	// gptTailBlocks is the 32 KiB at the end that holds the backup GPT.
	gptTailBlocks = 16

	gptAttrRequiredReadOnly = gpt.AttrRequired | gpt.AttrReadOnly
)

// gptTable lays out the GPT entries around the ESP; first and end are
// 512-byte sectors, end exclusive.
func (l *layout) gptTable() *gpt.Table {
	t := &gpt.Table{DiskGUID: l.diskGUID}
	add := func(name string, typ GUID, first, end uint64, attrs uint64) {
		if end <= first {
			return
		}
		t.Partitions = append(t.Partitions, gpt.Partition{Name: name, Type: typ,
			Start: int64(first) * sectorSize, Size: int64(end-first) * sectorSize, Attributes: attrs})
	}
	espFirst := uint64(l.espLBA) * 4
	espEnd := espFirst + uint64(l.espSectors)
	isoEnd := uint64(l.isoEndLBA) * 4
	if l.espAppended {
		add("Gap0", gpt.BasicData, gptFirstUsable, espFirst, gptAttrRequiredReadOnly)
		add("Appended2", gpt.EFISystem, espFirst, espEnd, 0)
	} else {
		add("Gap0", gpt.BasicData, gptFirstUsable, espFirst, gptAttrRequiredReadOnly)
		add("EFI boot partition", gpt.EFISystem, espFirst, espEnd, gptAttrRequiredReadOnly)
		add("Gap1", gpt.BasicData, espEnd, isoEnd, gptAttrRequiredReadOnly)
	}
	for i := range t.Partitions {
		t.Partitions[i].GUID = gpt.NewSHA1GUID(l.diskGUID, "partition "+string(rune('1'+i)))
	}
	return t
}

// systemArea builds the first 32 KiB and, with a GPT, the 32 KiB tail.
func (l *layout) systemArea() (area, tail []byte) {
	area = make([]byte, systemAreaSize)
	total := uint64(l.totalBlocks) * 4
	bios := l.img.BIOSBoot
	if bios != nil && len(bios.MBRCode) > 0 {
		// As xorriso does, everything before the partition table comes
		// from the template: the boot code and its disk signature.
		copy(area[:mbrTableOffset], bios.MBRCode)
		// boot_hybrid.img reads this sector (core.img's first, after the
		// 2 KiB cdboot.img) through the BIOS disk services.
		binary.LittleEndian.PutUint64(area[grub2MBROffset:], uint64(l.biosBoot.extent)*4+4)
	}
	switch {
	case l.gpt:
		putMBRPartition(area[mbrTableOffset:], 0, mbrTypeGPT, 1, total-1, total)
	case bios != nil && len(bios.MBRCode) > 0:
		putMBRPartition(area[mbrTableOffset:], mbrActive, mbrTypeGRUB, 1, total-1, total)
	}
	if l.gpt || (bios != nil && len(bios.MBRCode) > 0) {
		area[510], area[511] = 0x55, 0xAA
	}
	if !l.gpt {
		return area, nil
	}

	// The primary GPT fills sectors 1-63; the backup ends the image, after
	// one unused sector of the tail.
	primary, backup := l.gptTable().Encode(int64(total), gptEntries)
	copy(area[sectorSize:], primary)
	tail = make([]byte, gptTailBlocks*BlockSize)
	copy(tail[len(tail)-len(backup):], backup)
	return area, tail
}

// putMBRPartition writes a 16-byte MBR partition entry. The CHS fields use
// the geometry xorriso picks (mbrGeometry); they matter to no current
// firmware, but fdisk checks them against the LBA fields.
func putMBRPartition(e []byte, status, typ byte, start, size, total uint64) {
	heads, secs := mbrGeometry(total)
	e[0] = status
	putCHS(e[1:4], start, heads, secs)
	e[4] = typ
	putCHS(e[5:8], start+size-1, heads, secs)
	binary.LittleEndian.PutUint32(e[8:], uint32(min(start, 0xFFFFFFFF)))
	binary.LittleEndian.PutUint32(e[12:], uint32(min(size, 0xFFFFFFFF)))
}

// mbrGeometry returns heads per cylinder and sectors per head: 64 and 32
// (1 MiB cylinders) as long as 1024 cylinders cover the image, else more
// heads (then 63 sectors) up to 255, the way xorriso's -partition_hd_cyl
// adapts; past 8 GiB the CHS fields saturate.
func mbrGeometry(total uint64) (heads, secs uint64) {
	for _, s := range []uint64{32, 63} {
		for h := uint64(64); h <= 255; h++ {
			if total <= 1024*h*s {
				return h, s
			}
		}
	}
	return 255, 63
}

func putCHS(b []byte, lba, heads, secs uint64) {
	c := lba / (heads * secs)
	h := (lba / secs) % heads
	s := lba%secs + 1
	if c > 1023 {
		c, h, s = 1023, heads-1, secs
	}
	b[0] = byte(h)
	b[1] = byte(s) | byte(c>>8)<<6
	b[2] = byte(c)
}
