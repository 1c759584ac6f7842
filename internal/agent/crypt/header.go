package crypt

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// LUKS2 binary header (cryptsetup's docs/on-disk-format-luks2.pdf, 2.1):
// magic "LUKS\xba\xbe", version (big endian 2), header size, sequence id,
// then a NUL-padded 48-byte label at offset 24.
const (
	luksMagic    = "LUKS\xba\xbe"
	labelOffset  = 24
	labelSize    = 48
	luks2Version = 2
)

// Label reads the label of the LUKS2 container starting at offset 0 of r;
// ok is false when r does not start with a LUKS2 header.
func Label(r io.ReaderAt) (label string, ok bool, err error) {
	var hdr [labelOffset + labelSize]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return "", false, nil
		}
		return "", false, err
	}
	if string(hdr[:6]) != luksMagic || hdr[6] != 0 || hdr[7] != luks2Version {
		return "", false, nil
	}
	l := hdr[labelOffset:]
	if i := bytes.IndexByte(l, 0); i >= 0 {
		l = l[:i]
	}
	return string(l), true, nil
}

// Container is a LUKS2 partition holding the file system of one of
// Labels (Label; the container itself is labeled ContainerLabel(Label)).
type Container struct {
	Dev, Label string
}

// Find lists the partitions in sysBlock (/sys/class/block) that are LUKS2
// containers of one of Labels, read through devDir (/dev).
// Several with the same label (two Kairos disks) are an error: which one
// this node is cannot be told.
func Find(sysBlock, devDir string) ([]Container, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, err
	}
	var found []Container
	seen := map[string]string{}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(sysBlock, e.Name(), "partition")); err != nil {
			continue // whole disks, loops, dm devices
		}
		dev := filepath.Join(devDir, e.Name())
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		luks, ok, err := Label(f)
		f.Close()
		if err != nil || !ok {
			continue
		}
		i := slices.IndexFunc(Labels, func(l string) bool { return ContainerLabel(l) == luks })
		if i < 0 {
			continue
		}
		label := Labels[i]
		if other, dup := seen[label]; dup {
			return nil, fmt.Errorf("two encrypted partitions labeled %s (%s and %s): detach the other Kairos disk", label, other, dev)
		}
		seen[label] = dev
		found = append(found, Container{Dev: dev, Label: label})
	}
	sort.Slice(found, func(i, j int) bool { return strings.Compare(found[i].Label, found[j].Label) < 0 })
	return found, nil
}
