package iso9660

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
)

// Image describes an ISO 9660 image as pure data. Write turns it into bytes.
type Image struct {
	// VolumeID is the volume identifier (the label: COS_LIVE, what
	// root=live:CDLABEL= looks for). At most 32 printable ASCII characters;
	// ECMA-119 asks for d-characters (A-Z, 0-9, _), which is what Kairos
	// uses. The Joliet descriptor gets it too, cut to 16 characters.
	VolumeID string
	// ModTime is the volume creation and modification time (from
	// SOURCE_DATE_EPOCH) and the time of every entry whose ModTime is zero.
	// It must be set: nothing in this package reads the clock.
	ModTime time.Time

	// Root is the tree. Its own Meta gives the root directory's metadata.
	Root *Dir

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

// Meta is what Rock Ridge records of an entry: POSIX permissions, owner and
// modification time.
type Meta struct {
	// Mode holds the permission bits and fs.ModeSetuid, fs.ModeSetgid,
	// fs.ModeSticky; the file type bits are ignored (the node type decides).
	Mode fs.FileMode
	UID  uint32
	GID  uint32
	// ModTime is written as modification, access and attribute change
	// time. Zero means Image.ModTime.
	ModTime time.Time
}

// Node is an entry of the tree: *Dir, *File or *Symlink.
type Node interface {
	meta() *Meta
}

// Dir is a directory. Entries maps names (one path component, any bytes
// but "/" and NUL, at most 255) to nodes; the order of the map does not
// matter, entries are sorted when written.
type Dir struct {
	Meta
	Entries map[string]Node
}

// File is a regular file of Size bytes whose content Open returns. Open is
// called once per Write, while the file's data is written, and must return
// exactly Size bytes.
type File struct {
	Meta
	Size int64
	Open func() (io.ReadCloser, error)
}

// Symlink is a symbolic link to Target (absolute or relative, at most 1023
// bytes: the most libisofs reads back). Joliet has no symlinks: they only
// show in the Rock Ridge tree.
type Symlink struct {
	Meta
	Target string
}

func (d *Dir) meta() *Meta     { return &d.Meta }
func (f *File) meta() *Meta    { return &f.Meta }
func (s *Symlink) meta() *Meta { return &s.Meta }

// NewDir returns an empty directory.
func NewDir(m Meta) *Dir { return &Dir{Meta: m, Entries: map[string]Node{}} }

// BytesFile returns a file whose content is b.
func BytesFile(b []byte, m Meta) *File {
	return &File{Meta: m, Size: int64(len(b)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}

// HostFile returns a file whose content is read from the host file at p
// when the image is written. Its size is taken now; Meta is given, not read
// from the host, so that the caller decides what the image records.
func HostFile(p string, m Meta) (*File, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("iso9660: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("iso9660: %s is not a regular file", p)
	}
	return &File{Meta: m, Size: st.Size(), Open: openHost(p)}, nil
}

// Add puts n in d under name.
func (d *Dir) Add(name string, n Node) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("iso9660: %w", err)
	}
	if n == nil {
		return fmt.Errorf("iso9660: %q: nil node", name)
	}
	if d.Entries == nil {
		d.Entries = map[string]Node{}
	}
	if _, ok := d.Entries[name]; ok {
		return fmt.Errorf("iso9660: %q already exists", name)
	}
	d.Entries[name] = n
	return nil
}

// AddPath puts n at the slash-separated path p below d, creating missing
// parent directories with dirMeta.
func (d *Dir) AddPath(p string, n Node, dirMeta Meta) error {
	parts, err := splitPath(p)
	if err != nil {
		return fmt.Errorf("iso9660: %w", err)
	}
	cur := d
	for i, part := range parts[:len(parts)-1] {
		next, ok := cur.Entries[part]
		if !ok {
			nd := NewDir(dirMeta)
			if err := cur.Add(part, nd); err != nil {
				return err
			}
			cur = nd
			continue
		}
		nd, ok := next.(*Dir)
		if !ok {
			return fmt.Errorf("iso9660: %s: %s is not a directory", p, path.Join(parts[:i+1]...))
		}
		cur = nd
	}
	if err := cur.Add(parts[len(parts)-1], n); err != nil {
		return fmt.Errorf("%w (adding %s)", err, p)
	}
	return nil
}

// Lookup returns the node at the slash-separated path p below d.
func (d *Dir) Lookup(p string) (Node, error) {
	parts, err := splitPath(p)
	if err != nil {
		return nil, fmt.Errorf("iso9660: %w", err)
	}
	var cur Node = d
	for i, part := range parts {
		dir, ok := cur.(*Dir)
		if !ok {
			return nil, fmt.Errorf("iso9660: %s: %s is not a directory", p, path.Join(parts[:i]...))
		}
		if cur, ok = dir.Entries[part]; !ok {
			return nil, fmt.Errorf("iso9660: %s: %w", p, fs.ErrNotExist)
		}
	}
	return cur, nil
}

func splitPath(p string) ([]string, error) {
	clean := strings.Trim(path.Clean("/"+p), "/")
	if clean == "" {
		return nil, fmt.Errorf("path %q names the root", p)
	}
	return strings.Split(clean, "/"), nil
}

// checkName enforces what Rock Ridge NM and POSIX readers can hold.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains '/' or NUL", name)
	case len(name) > maxNameLen:
		return fmt.Errorf("name %q is %d bytes, at most %d fit (NAME_MAX)", name, len(name), maxNameLen)
	}
	return nil
}

// maxNameLen is NAME_MAX of the readers (Linux): Rock Ridge itself could
// chain NM entries further.
const maxNameLen = 255
