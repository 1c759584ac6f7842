package fat

import "encoding/binary"

const (
	// mediaFixed is the media descriptor of any non-removable disk; it is
	// also the low byte of FAT entry 0.
	mediaFixed = 0xF8

	// oemName: fatgen103 recommends "MSWIN4.1" because some FAT drivers
	// look at it; the field is otherwise informational.
	oemName = "MSWIN4.1"

	noLabel = "NO NAME    " // the boot sector label of an unlabelled volume

	// Legacy CHS geometry, only informational on LBA disks. mtools refuses
	// images whose sector count is not a multiple of sectors per track, so
	// sectorsPerTrack adapts to the size (see bootSector.marshal).
	heads = 64

	// FAT32 reserved-area layout (fatgen103 "FAT32 Extended BPB").
	fsInfoSector     = 1
	backupBootSector = 6
)

// bootSector is sector 0 (and on FAT32 also sector 6): the BIOS Parameter
// Block describing the geometry, and the extended BPB with the volume ID
// and label (fatgen103 "Boot Sector and BPB").
type bootSector struct {
	g             geometry
	volumeID      uint32
	label         [11]byte // padded with spaces; noLabel when there is none
	hiddenSectors uint32
}

func (b bootSector) marshal() []byte {
	s := make([]byte, sectorSize)
	le := binary.LittleEndian
	g := b.g

	// The jump over the BPB must be EB xx 90 or E9 xx xx: UEFI FAT drivers
	// (EDK2 FatPkg) reject a volume without it.
	bootCode := 0x3E // FAT16: code follows the 62-byte BPB
	if g.fatType == FAT32 {
		bootCode = 0x5A // FAT32: code follows the 90-byte BPB
	}
	s[0], s[1], s[2] = 0xEB, byte(bootCode-2), 0x90
	copy(s[3:11], oemName)
	le.PutUint16(s[11:], sectorSize)
	s[13] = byte(g.sectorsPerCluster)
	le.PutUint16(s[14:], uint16(g.reservedSectors))
	s[16] = numFATs
	le.PutUint16(s[17:], uint16(g.rootEntries))
	if g.fatType == FAT16 && g.totalSectors < 0x10000 {
		le.PutUint16(s[19:], uint16(g.totalSectors))
	} else {
		le.PutUint32(s[32:], uint32(g.totalSectors))
	}
	s[21] = mediaFixed
	le.PutUint16(s[24:], uint16(sectorsPerTrack(g.totalSectors)))
	le.PutUint16(s[26:], heads)
	le.PutUint32(s[28:], b.hiddenSectors)

	ext := s[36:] // FAT16 extended BPB
	fsType := "FAT16   "
	if g.fatType == FAT16 {
		le.PutUint16(s[22:], uint16(g.fatSectors))
	} else {
		le.PutUint32(s[36:], uint32(g.fatSectors))
		// 40: ext flags 0 (FATs mirrored), 42: version 0.0.
		le.PutUint32(s[44:], fat32RootCluster)
		le.PutUint16(s[48:], fsInfoSector)
		le.PutUint16(s[50:], backupBootSector)
		ext = s[64:]
		fsType = "FAT32   "
	}
	ext[0] = 0x80 // drive number: first hard disk
	ext[2] = 0x29 // extended boot signature: the next three fields are valid
	le.PutUint32(ext[3:], b.volumeID)
	copy(ext[7:18], b.label[:])
	copy(ext[18:26], fsType)

	// Boot code for a BIOS that tries to boot the volume: "int 18h" (boot
	// failure, try the next device), then halt in place.
	copy(s[bootCode:], []byte{0xCD, 0x18, 0xEB, 0xFE})
	s[510], s[511] = 0x55, 0xAA
	return s
}

// sectorsPerTrack is 32 when the size allows (mkfs.fat's choice for
// images), otherwise the largest power of two dividing the sector count.
func sectorsPerTrack(total int64) int64 {
	spt := int64(32)
	for total%spt != 0 {
		spt /= 2
	}
	return spt
}
