package iso9660

import (
	"io"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
	"github.com/kairos-io/kairos/internal/fstree"
)

// Image describes an ISO 9660 image as pure data. Write turns it into bytes.
type Image struct {
	// VolumeID is the volume identifier (the label: COS_LIVE, what
	// root=live:CDLABEL= looks for). At most 32 printable ASCII characters;
	// ECMA-119 asks for d-characters (A-Z, 0-9, _), which is what Kairos
	// uses. The Joliet descriptor gets it too, cut to 16 characters.
	VolumeID string
	// ModTime is the volume creation and modification time (from
	// SOURCE_DATE_EPOCH), and the boot catalog's. It must be set: nothing
	// in this package reads the clock.
	ModTime time.Time

	// Root is the tree, a directory. Rock Ridge records each entry's
	// permissions (with setuid, setgid, sticky), owner and ModTime (whole
	// seconds); directories, regular files and symlinks (targets of at most
	// 1023 bytes: the most libisofs reads back; Joliet has none) are
	// written, hardlinks (LinkID) as copies, xattrs not at all; devices,
	// FIFOs and sockets are refused. Names are at most 255 bytes.
	Root *fstree.Node

	// Joliet adds the Joliet tree, for Windows and other readers without
	// Rock Ridge. Rock Ridge is always written.
	Joliet bool

	// BIOSBoot, if set, makes the image boot under PC-BIOS: as a CD through
	// the El Torito default entry, and from a disk when MBRCode is given.
	BIOSBoot *BIOSBoot
	// EFIBoot, if set, makes the image boot under UEFI: as a CD through an
	// El Torito EFI entry, and from a disk through a GPT EFI System
	// Partition when EFIBoot.Partition is set or the image is appended.
	EFIBoot *EFIBoot
	// CatalogPath, if set, shows the El Torito boot catalog as a file at
	// this path of the tree, as xorriso does ("boot.catalog"). Empty keeps
	// it out of the tree.
	CatalogPath string

	// DiskGUID is the GPT disk GUID. Zero derives one from VolumeID and
	// ModTime (UUID version 5), so that rebuilds are identical; partition
	// GUIDs are derived from the disk GUID.
	DiskGUID GUID
}

// BIOSBoot is the El Torito BIOS (platform 0x00) boot entry: GRUB's
// eltorito.img (cdboot.img + core.img) in Kairos.
type BIOSBoot struct {
	// Path of the boot image in the tree, e.g. "boot/grub/eltorito.img".
	Path string
	// LoadSectors is the number of 512-byte sectors the BIOS loads at boot
	// (-boot-load-size). Zero means 4, the 2 KiB of GRUB's cdboot.img.
	LoadSectors uint16
	// BootInfoTable patches the boot info table into the boot image at
	// offset 8 (-boot-info-table): PVD LBA, image LBA, image length and the
	// checksum of the image from byte 64. The image in the ISO differs from
	// the source file by these bytes, as with xorriso.
	BootInfoTable bool
	// GRUB2BootInfo patches offset 2548 of the boot image with its 512-byte
	// sector address + 5, 64 bit little-endian (--grub2-boot-info): the
	// sector where GRUB's core.img continues after its first sector, which
	// its diskboot code loads from when booted from a disk through MBRCode.
	GRUB2BootInfo bool
	// MBRCode is GRUB's boot_hybrid.img (--grub2-mbr). Its first 446 bytes
	// become the MBR's boot code and disk signature, with the boot image's 512-byte sector
	// address + 4 (where core.img starts, after the 2 KiB cdboot.img)
	// patched at 0x1B0, and the MBR gets a partition table: a protective
	// 0xEE entry when a GPT is written, else a bootable 0xCD entry over the
	// image (--protective-msdos-label). The image then boots from a disk
	// under BIOS. Nil leaves the MBR code empty.
	MBRCode []byte
}

// EFIBoot is the El Torito EFI (platform 0xEF) boot entry: a FAT image (the
// EFI System Partition) with EFI/BOOT/BOOTX64.EFI. It is given either as a
// file of the tree or as an image appended after the ISO 9660 data.
type EFIBoot struct {
	// Path of the FAT image in the tree, e.g. "boot/uefi.img" (--efi-boot).
	Path string
	// Partition marks the file at Path as EFI System Partition in a GPT
	// (-efi-boot-part --efi-boot-image), so that UEFI boots the image from
	// a disk too.
	Partition bool

	// Image, of Size bytes, is a FAT image that is not in the tree: it is
	// appended after the ISO 9660 data, padded to 2 KiB, and is both the El
	// Torito EFI image and GPT partition 2 (-append_partition 2 0xef
	// -appended_part_as_gpt -e --interval:appended_partition_2:all::).
	// Set either Path or Image.
	Image io.ReaderAt
	Size  int64
}

// GUID is a GPT GUID in RFC 4122 byte order, the order of its string form;
// package gpt, which encodes the system area's GPT, stores it mixed-endian
// as UEFI prescribes.
type GUID = gpt.GUID

// maxNameLen is NAME_MAX of the readers (Linux): Rock Ridge itself could
// chain NM entries further.
const maxNameLen = 255
