package iso9660

import (
	"crypto/sha1"
	"encoding/binary"
	"hash/crc32"
	"unicode/utf16"
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

	gptEntrySize    = 128
	gptEntries      = (systemAreaSize/sectorSize - 2) * sectorSize / gptEntrySize // 248
	gptArraySectors = gptEntries * gptEntrySize / sectorSize                      // 62
	gptFirstUsable  = systemAreaSize / sectorSize                                 // 64
	gptHeaderSize   = 92
	// gptTailBlocks is the 32 KiB at the end that holds the backup GPT.
	gptTailBlocks = 16

	// Partition attributes: platform required (bit 0), read-only (bit 60).
	gptAttrRequiredReadOnly = 1<<60 | 1<<0
)

var (
	gptTypeBasicData = mustGUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
	gptTypeESP       = mustGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	// namespaceURL is the RFC 4122 URL namespace for version 5 GUIDs.
	namespaceURL = mustGUID("6BA7B811-9DAD-11D1-80B4-00C04FD430C8")
)

func mustGUID(s string) GUID {
	var g GUID
	j := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			continue
		}
		g[j/2] |= hexVal(s[i]) << (4 * (1 - j%2))
		j++
	}
	return g
}

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// sha1GUID is the RFC 4122 version 5 UUID of name in namespace.
func sha1GUID(namespace GUID, name string) GUID {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write([]byte(name))
	var g GUID
	copy(g[:], h.Sum(nil))
	g[6] = g[6]&0x0F | 0x50
	g[8] = g[8]&0x3F | 0x80
	return g
}

// encode is the on-disk form (UEFI 2.10 appendix A): the first three
// fields little-endian.
func (g GUID) encode() []byte {
	return []byte{g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6],
		g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]}
}

// gptPartition is one GPT entry; first and last are 512-byte sectors,
// last inclusive.
type gptPartition struct {
	name        string
	typ, guid   GUID
	first, last uint64
	attrs       uint64
}

// gptPartitions lays out the GPT entries around the ESP.
func (l *layout) gptPartitions() []gptPartition {
	var parts []gptPartition
	add := func(name string, typ GUID, first, end uint64, attrs uint64) {
		if end <= first {
			return
		}
		parts = append(parts, gptPartition{name: name, typ: typ, first: first, last: end - 1, attrs: attrs})
	}
	espFirst := uint64(l.espLBA) * 4
	espEnd := espFirst + uint64(l.espSectors)
	isoEnd := uint64(l.isoEndLBA) * 4
	if l.espAppended {
		add("Gap0", gptTypeBasicData, gptFirstUsable, espFirst, gptAttrRequiredReadOnly)
		add("Appended2", gptTypeESP, espFirst, espEnd, 0)
	} else {
		add("Gap0", gptTypeBasicData, gptFirstUsable, espFirst, gptAttrRequiredReadOnly)
		add("EFI boot partition", gptTypeESP, espFirst, espEnd, gptAttrRequiredReadOnly)
		add("Gap1", gptTypeBasicData, espEnd, isoEnd, gptAttrRequiredReadOnly)
	}
	for i := range parts {
		parts[i].guid = sha1GUID(l.diskGUID, "partition "+string(rune('1'+i)))
	}
	return parts
}

// gptArray encodes the 248 entries (UEFI 2.10 5.3.3); unused ones are zero.
func gptArray(parts []gptPartition) []byte {
	b := make([]byte, gptEntries*gptEntrySize)
	for i, p := range parts {
		e := b[i*gptEntrySize:]
		copy(e[0:], p.typ.encode())
		copy(e[16:], p.guid.encode())
		binary.LittleEndian.PutUint64(e[32:], p.first)
		binary.LittleEndian.PutUint64(e[40:], p.last)
		binary.LittleEndian.PutUint64(e[48:], p.attrs)
		for j, c := range utf16.Encode([]rune(p.name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	return b
}

// gptHeader encodes a header sector (UEFI 2.10 5.3.2) with its CRC32.
func gptHeader(my, alternate, firstUsable, lastUsable, entriesLBA uint64, disk GUID, arrayCRC uint32) []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	copy(b, "EFI PART")
	le.PutUint32(b[8:], 0x00010000)
	le.PutUint32(b[12:], gptHeaderSize)
	le.PutUint64(b[24:], my)
	le.PutUint64(b[32:], alternate)
	le.PutUint64(b[40:], firstUsable)
	le.PutUint64(b[48:], lastUsable)
	copy(b[56:], disk.encode())
	le.PutUint64(b[72:], entriesLBA)
	le.PutUint32(b[80:], gptEntries)
	le.PutUint32(b[84:], gptEntrySize)
	le.PutUint32(b[88:], arrayCRC)
	le.PutUint32(b[16:], crc32.ChecksumIEEE(b[:gptHeaderSize]))
	return b
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

	array := gptArray(l.gptPartitions())
	crc := crc32.ChecksumIEEE(array)
	last := total - 1
	lastUsable := total - gptTailBlocks*4
	backupArray := last - gptArraySectors
	copy(area[sectorSize:], gptHeader(1, last, gptFirstUsable, lastUsable, 2, l.diskGUID, crc))
	copy(area[2*sectorSize:], array)

	tail = make([]byte, gptTailBlocks*BlockSize)
	tailFirst := total - gptTailBlocks*4
	copy(tail[(backupArray-tailFirst)*sectorSize:], array)
	copy(tail[(last-tailFirst)*sectorSize:], gptHeader(last, 1, gptFirstUsable, lastUsable, backupArray, l.diskGUID, crc))
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
