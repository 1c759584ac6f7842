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
	growOffline, growOnline func(dev string) []command
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
		// last mount; e2fsck -p only fixes what is safe to fix unattended,
		// and exits 1 when it did fix something (a journal replayed after
		// a power cut), which is no failure.
		growOffline: func(dev string) []command {
			return []command{{args: []string{"e2fsck", "-f", "-p", dev}, okExit: []int{1}}, {args: []string{"resize2fs", dev}}}
		},
		growOnline: func(dev string) []command { return []command{{args: []string{"resize2fs", dev}}} },
		maxLabel:   16,
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

// command is one run of a node tool; okExit are exit codes besides 0
// that are success.
type command struct {
	args   []string
	okExit []int
}

// fsSize is the size in bytes of the ext2/3/4 file system on dev (its
// block count by the superblock), 0 for another or none.
func fsSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != 0xEF53 {
		return 0, nil
	}
	blocks := uint64(le.Uint32(sb[0x04:]))
	if le.Uint32(sb[0x60:])&0x80 != 0 { // INCOMPAT_64BIT: the high half counts
		blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	logSize := le.Uint32(sb[0x18:])
	if logSize > 6 || blocks > 1<<48 {
		return 0, nil // not a size a real file system has
	}
	return int64(blocks << (10 + logSize)), nil
}

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
