package gpt

import (
	"encoding/binary"
	"fmt"
)

const (
	// mbrBootCodeSize is the bootstrap code area of the MBR, before the disk
	// signature at 440.
	mbrBootCodeSize = 440
	mbrEntryOffset  = 446
	mbrEntrySize    = 16
	typeProtective  = 0xEE // "GPT protective", UEFI 2.10 table 5.3
)

// protectiveMBR builds LBA 0 (UEFI 2.10 5.2.3): one partition of type 0xEE
// from LBA 1 to the end of the disk (capped at 2^32-1 sectors), so that
// MBR-only tools see the disk as used, plus the 0x55AA signature.
//
// bootCode, when given, fills the bootstrap area so that a legacy BIOS can
// chain into GRUB (boot.img, which then loads core.img from the BIOS boot
// partition). A hybrid MBR would add entries 2-4 here, mirroring GPT
// partitions for BIOSes that insist on a bootable MBR partition; Kairos
// boots BIOS through the BIOS boot partition and does not need one.
func protectiveMBR(totalSectors int64, bootCode []byte, bootable bool) ([]byte, error) {
	if len(bootCode) > mbrBootCodeSize {
		return nil, fmt.Errorf("MBR boot code is %d bytes, at most %d fit before the partition table", len(bootCode), mbrBootCodeSize)
	}
	b := make([]byte, SectorSize)
	copy(b, bootCode)

	e := b[mbrEntryOffset : mbrEntryOffset+mbrEntrySize]
	if bootable {
		// Some legacy BIOSes only boot a disk with an active MBR entry; the
		// UEFI spec leaves the flag's meaning on such systems undefined.
		e[0] = 0x80
	}
	copy(e[1:4], []byte{0x00, 0x02, 0x00}) // CHS of LBA 1: head 0, sector 2, cylinder 0
	e[4] = typeProtective
	copy(e[5:8], []byte{0xFF, 0xFF, 0xFF}) // CHS past the 8 GiB CHS limit
	binary.LittleEndian.PutUint32(e[8:], 1)
	binary.LittleEndian.PutUint32(e[12:], uint32(min(totalSectors-1, 0xFFFFFFFF)))

	b[510], b[511] = 0x55, 0xAA
	return b, nil
}
