package earlyboot

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
)

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

// imageLabels name the loop device of a system image after the image
// file, as 90-kairos-images.rules does under udev: an upgrade interrupted
// between its renames still boots, and a squashfs recovery image (no
// label) boots as COS_SYSTEM.
var imageLabels = map[string]string{
	"/cOS/active.img":        "COS_ACTIVE",
	"/cOS/passive.img":       "COS_PASSIVE",
	"/cOS/recovery.img":      "COS_SYSTEM",
	"/cOS/recovery.squashfs": "COS_SYSTEM",
}

// ImageLabel is the label of a loop device backed by file, "" when it is
// not a system image.
func ImageLabel(backingFile string) string {
	for suffix, label := range imageLabels {
		if strings.HasSuffix(strings.TrimSpace(backingFile), suffix) {
			return label
		}
	}
	return ""
}
