package iso9660

import (
	"encoding/binary"
	"fmt"
)

// El Torito (Bootable CD-ROM Format Specification 1.0): the Boot Record
// (voldesc.go) points at the boot catalog, whose entries point at boot
// images in the image. Firmware booting from a CD reads the catalog and
// loads the image of its platform: BIOS the default entry (platform 0x00),
// UEFI the section of platform 0xEF.

const (
	platformX86 = 0x00
	platformEFI = 0xEF

	bootable      = 0x88
	noEmulation   = 0x00
	headerFinal   = 0x91 // last section header
	catalogSize   = BlockSize
	catalogEntry  = 32
	defaultLoadSz = 4 // 512-byte sectors: GRUB's 2 KiB cdboot.img

	// Boot info table (mkisofs -boot-info-table): bytes 8-63 of the image.
	bootInfoOffset = 8
	bootInfoEnd    = 64
	// GRUB 2 boot info (xorriso --grub2-boot-info): 8 bytes at 2548, which
	// is offset 500 of the second 2 KiB of GRUB's eltorito.img, the
	// blocklist start of the diskboot.img that begins core.img there.
	grub2InfoOffset = 2548
	grub2InfoEnd    = grub2InfoOffset + 8
	// grub2MBROffset is where boot_hybrid.img keeps the sector of core.img
	// (xorriso --grub2-mbr), 64 bit little-endian.
	grub2MBROffset = 0x1B0

	// maxBIOSImage bounds the boot image read into memory to be patched.
	maxBIOSImage = 64 << 20
)

// catalogEntrySpec is one boot entry of the catalog.
type catalogEntrySpec struct {
	platform    byte
	loadSectors uint16
	lba         uint32
}

// bootCatalog builds the catalog block: the Validation Entry, the
// Initial/Default Entry (the first image), then one final Section Header and
// Section Entry for the second image of another platform.
func bootCatalog(entries []catalogEntrySpec) []byte {
	b := make([]byte, catalogSize)
	// Validation Entry (El Torito 2.1): header ID 1, platform of the
	// default entry, the 0x55 0xAA key, and a checksum that makes the sum
	// of the entry's 16-bit words zero.
	b[0] = 1
	b[1] = entries[0].platform
	b[30], b[31] = 0x55, 0xAA
	var sum uint16
	for i := 0; i < catalogEntry; i += 2 {
		sum += binary.LittleEndian.Uint16(b[i:])
	}
	binary.LittleEndian.PutUint16(b[28:], -sum)

	putSectionEntry(b[catalogEntry:], entries[0])
	off := 2 * catalogEntry
	for _, e := range entries[1:] {
		// Section Header (El Torito 2.3): final, its platform, 1 entry.
		b[off] = headerFinal
		b[off+1] = e.platform
		binary.LittleEndian.PutUint16(b[off+2:], 1)
		putSectionEntry(b[off+catalogEntry:], e)
		off += 2 * catalogEntry
	}
	return b
}

// putSectionEntry writes an Initial/Default or Section Entry (El Torito
// 2.2, 2.4): bootable, no emulation, load segment 0 (the traditional
// 0x7C0), system type 0, sector count, image LBA.
func putSectionEntry(b []byte, e catalogEntrySpec) {
	b[0] = bootable
	b[1] = noEmulation
	binary.LittleEndian.PutUint16(b[2:], 0)
	b[4] = 0
	binary.LittleEndian.PutUint16(b[6:], e.loadSectors)
	binary.LittleEndian.PutUint32(b[8:], e.lba)
}

// efiLoadSectors is the sector count of an EFI image: its whole 2 KiB
// blocks in 512-byte sectors, as xorriso records it, capped at the field's
// 0xFFFF (32 MiB); UEFI firmware reads the FAT file system's own size anyway.
func efiLoadSectors(size int64) uint16 {
	return uint16(min(blocks(size)*4, 0xFFFF))
}

// patchBootImage applies the boot information a BIOS boot image asks for.
// GRUB 2's comes first, because the boot info table's checksum covers it
// (what xorriso does: its checksum matches the patched bytes).
func patchBootImage(img []byte, b *BIOSBoot, pvdLBA, lba uint32) error {
	if b.GRUB2BootInfo {
		if len(img) < grub2InfoEnd {
			return fmt.Errorf("boot image is %d bytes, too small for the GRUB 2 boot info at %d-%d (is it GRUB's eltorito.img?)",
				len(img), grub2InfoOffset, grub2InfoEnd-1)
		}
		// The 512-byte sector after the first sector of core.img.
		binary.LittleEndian.PutUint64(img[grub2InfoOffset:], uint64(lba)*4+5)
	}
	if b.BootInfoTable {
		if len(img) < bootInfoEnd {
			return fmt.Errorf("boot image is %d bytes, too small for a boot info table (64 bytes)", len(img))
		}
		// The checksum is the sum of the little-endian 32-bit words from
		// byte 64 to the end; a partial last word is zero-padded, as the
		// data is in the image.
		var sum uint32
		for i := bootInfoEnd; i < len(img); i += 4 {
			var w [4]byte
			copy(w[:], img[i:])
			sum += binary.LittleEndian.Uint32(w[:])
		}
		binary.LittleEndian.PutUint32(img[8:], pvdLBA)
		binary.LittleEndian.PutUint32(img[12:], lba)
		binary.LittleEndian.PutUint32(img[16:], uint32(len(img)))
		binary.LittleEndian.PutUint32(img[20:], sum)
		clear(img[24:bootInfoEnd]) // reserved
	}
	return nil
}
