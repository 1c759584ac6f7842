package blockdev

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// On-disk formats read here: the ext4 superblock (kernel
// Documentation/filesystems/ext4/super.rst: magic 0xEF53 at 0x38, label at
// 0x78), the LUKS2 binary header (cryptsetup's LUKS2 On-Disk Format
// Specification: magic "LUKS\xba\xbe", version 2, label at 24), the FAT
// boot sector (Microsoft's FAT specification: BS_VolLab) and the ISO 9660
// primary volume descriptor (ECMA-119 8.4: standard identifier CD001,
// volume identifier at 40).

// Probe reads the file system (or LUKS2 container) type and label from the
// start of a block device: "ext4", "crypto_LUKS", "vfat", "iso9660",
// "squashfs", or "" for anything else. A label is returned only for the
// types that have one; it is the raw on-disk text, checked by LinkName
// before it names anything.
func Probe(r io.ReaderAt) (fstype, label string) {
	// The ISO 9660 volume descriptor ends the farthest in.
	buf := make([]byte, 0x8000+2048)
	n, _ := r.ReadAt(buf, 0)
	buf = buf[:n]
	at := func(off, size int) []byte {
		if off+size > len(buf) {
			return nil
		}
		return buf[off : off+size]
	}
	// LUKS2: magic and version 2 (LUKS1 has no label).
	if m := at(0, 8); m != nil && bytes.Equal(m[:6], []byte("LUKS\xba\xbe")) {
		if binary.BigEndian.Uint16(m[6:8]) == 2 {
			return "crypto_LUKS", cString(at(24, 48))
		}
		return "crypto_LUKS", ""
	}
	if m := at(0, 4); m != nil && string(m) == "hsqs" {
		return "squashfs", ""
	}
	// ext2/3/4: the superblock at 1024.
	if m := at(1024+0x38, 2); m != nil && binary.LittleEndian.Uint16(m) == 0xEF53 {
		return "ext4", cString(at(1024+0x78, 16))
	}
	// ISO 9660: the primary volume descriptor at 32 KiB.
	if m := at(0x8000, 6); m != nil && m[0] == 1 && string(m[1:6]) == "CD001" {
		return "iso9660", strings.TrimRight(string(at(0x8000+40, 32)), " ")
	}
	// FAT: the boot sector's signature and file system type field.
	if sig := at(510, 2); sig != nil && sig[0] == 0x55 && sig[1] == 0xAA {
		var lab []byte
		switch {
		case bytes.HasPrefix(at(0x52, 8), []byte("FAT32")):
			lab = at(0x47, 11)
		case bytes.HasPrefix(at(0x36, 8), []byte("FAT1")):
			lab = at(0x2B, 11)
		default:
			return "", ""
		}
		l := strings.TrimRight(string(lab), " ")
		if l == "NO NAME" {
			l = ""
		}
		return "vfat", l
	}
	return "", ""
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// LinkName is the /dev/disk/by-label name of a label: the label itself
// when it is made of characters udev keeps as they are (letters, digits,
// "#+-.:=@_"), "" otherwise, so that a label read from a disk never
// becomes a path or a name udev would spell differently.
func LinkName(label string) string {
	if label == "" || label == "." || label == ".." || len(label) > 64 {
		return ""
	}
	for _, r := range label {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("#+-.:=@_", r):
		default:
			return ""
		}
	}
	return label
}

// Volumes are the labels of the block devices present, read from their
// superblocks (Probe): label to device, /dev/<name>. It needs no udev, and
// does not wait for it to name the devices (a CIDATA volume at boot).
func (h Devices) Volumes() map[string]string {
	out := map[string]string{}
	entries, _ := os.ReadDir(filepath.Join(h.Sys, "class/block"))
	for _, e := range entries {
		n := e.Name()
		if size, err := h.size(n); err != nil || size == 0 {
			continue
		}
		dev := filepath.Join(h.Dev, n)
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		_, label := Probe(f)
		f.Close()
		if l := LinkName(label); l != "" {
			if _, seen := out[l]; !seen {
				out[l] = dev
			}
		}
	}
	return out
}
