package repart

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// fileSystem is how the node's own tools make one kind of file system and,
// where supported, grow it.
type fileSystem struct {
	// mkfs is the command that makes it with a label.
	mkfs func(dev, label string) []string
	// grow is the commands that grow it to its partition, unmounted and
	// mounted (nil: not supported that way).
	growOffline, growOnline func(dev string) [][]string
	maxLabel                int
}

func ext(kind string) fileSystem {
	return fileSystem{
		mkfs: func(dev, label string) []string {
			args := []string{"mkfs." + kind, "-F", "-q"}
			if label != "" {
				args = append(args, "-L", label)
			}
			return append(args, dev)
		},
		// resize2fs refuses an unmounted file system not checked since its
		// last mount; e2fsck -p only fixes what is safe to fix unattended.
		growOffline: func(dev string) [][]string { return [][]string{{"e2fsck", "-f", "-p", dev}, {"resize2fs", dev}} },
		growOnline:  func(dev string) [][]string { return [][]string{{"resize2fs", dev}} },
		maxLabel:    16,
	}
}

// fileSystems are the file systems a layout step makes (add_partitions'
// filesystem) and grows (expand_partition), by the name upstream uses.
var fileSystems = map[string]fileSystem{
	"ext2": ext("ext2"),
	"ext3": ext("ext3"),
	"ext4": ext("ext4"),
	"xfs": {
		mkfs: func(dev, label string) []string {
			return append(append([]string{"mkfs.xfs", "-f"}, optLabel("-L", label)...), dev)
		},
		maxLabel: 12,
	},
	"vfat": {
		mkfs: func(dev, label string) []string {
			return append(append([]string{"mkfs.vfat"}, optLabel("-n", label)...), dev)
		},
		maxLabel: 11,
	},
	"swap": {
		mkfs: func(dev, label string) []string {
			return append(append([]string{"mkswap"}, optLabel("-L", label)...), dev)
		},
		maxLabel: 15,
	},
}

func init() { fileSystems["fat"] = fileSystems["vfat"] }

func optLabel(flag, label string) []string {
	if label == "" {
		return nil
	}
	return []string{flag, label}
}

// probe names the file system on dev by its superblock magic, "" for none
// it knows. Only the ones Apply can grow need telling apart exactly; the
// rest are named so that the refusal says what was found.
func probe(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b := make([]byte, 68*1024)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("reading %s: %w", dev, err)
	}
	b = b[:n]
	at := func(off int, magic string) bool {
		return len(b) >= off+len(magic) && string(b[off:off+len(magic)]) == magic
	}
	switch {
	case len(b) >= 1024+0x68 && binary.LittleEndian.Uint16(b[1024+0x38:]) == 0xEF53:
		// ext2/3/4 by their feature flags: a journal makes ext3, extents
		// or 64bit or flex_bg make ext4. All grow the same way.
		compat, incompat := binary.LittleEndian.Uint32(b[1024+0x5C:]), binary.LittleEndian.Uint32(b[1024+0x60:])
		switch {
		case incompat&(0x40|0x80|0x200) != 0:
			return "ext4", nil
		case compat&0x4 != 0:
			return "ext3", nil
		}
		return "ext2", nil
	case at(0, "XFSB"):
		return "xfs", nil
	case at(65536+64, "_BHRfS_M"):
		return "btrfs", nil
	case at(54, "FAT") || at(82, "FAT32"):
		return "vfat", nil
	case bytes.Contains(b[:min(len(b), 65536)], []byte("SWAPSPACE2")):
		return "swap", nil
	}
	return "", nil
}
