package fat

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kairos-io/kairos/internal/fstree"
)

// Options tune the file system. The zero value chooses everything
// automatically and deterministically.
type Options struct {
	// FATType forces FAT16 or FAT32; 0 chooses (see package doc).
	FATType int
	// ClusterSize in bytes (512 B to 32 KiB, a power of two); 0 uses
	// Microsoft's default for the size, adjusted to a valid cluster count.
	ClusterSize int64
	// VolumeID is the volume serial number; 0 derives it from the label
	// (CRC-32), so the same label always gives the same ID.
	VolumeID uint32
	// ModTime stamps every entry (creation, modification, access), taken
	// as UTC. Pass time.Unix(SOURCE_DATE_EPOCH, 0) for reproducible builds;
	// the zero value and anything before 1980 give 1980-01-01 00:00:00.
	ModTime time.Time
	// HiddenSectors is the partition's first LBA when the file system is
	// written inside a partition (BPB_HiddSec); 0 for a standalone image.
	HiddenSectors uint32
}

// Write creates a FAT file system of size bytes on w holding the tree root
// (nil: empty), with volume label label (up to 11 characters of the 8.3
// set, upper-cased; "" for none). The tree may hold only directories and
// regular files; names are compared case-insensitively, as FAT does, so two
// names of a directory differing only in case are an error. Entries are
// written in fstree.Sorted order; their modes, owners and times are not
// recorded.
//
// Everything is planned first: a tree that does not fit fails before
// anything is written. Metadata, directories and file clusters are written
// in full; free clusters are not written at all, so on a new (sparse) file
// of size bytes the result is identical byte for byte on every run.
func Write(w io.WriterAt, size int64, label string, root *fstree.Node, opt Options) error {
	g, err := newGeometry(size, opt)
	if err != nil {
		return fmt.Errorf("fat: %w", err)
	}
	lbl, hasLabel, err := volumeLabel(label)
	if err != nil {
		return fmt.Errorf("fat: %w", err)
	}
	p, err := newPlan(g, root, hasLabel)
	if err != nil {
		return fmt.Errorf("fat: %w", err)
	}
	volID := opt.VolumeID
	if volID == 0 {
		volID = crc32.ChecksumIEEE([]byte(strings.TrimRight(string(lbl[:]), " ")))
	}
	ts := toDOSTime(opt.ModTime)

	if err := p.writeReserved(w, bootSector{g: g, volumeID: volID, label: lbl, hiddenSectors: opt.HiddenSectors}); err != nil {
		return fmt.Errorf("fat: writing reserved sectors: %w", err)
	}
	fatBytes := p.fat.marshal()
	for i := range numFATs {
		if _, err := w.WriteAt(fatBytes, g.fatOffset(i)); err != nil {
			return fmt.Errorf("fat: writing FAT %d: %w", i+1, err)
		}
	}
	if err := p.writeTree(w, p.root, nil, lbl, ts); err != nil {
		return fmt.Errorf("fat: %w", err)
	}
	// Free clusters are not written, but a file must still be size bytes
	// long: firmware refuses a file system larger than its partition.
	// (Other writers, e.g. a disk image at an offset, already have the room.)
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Size() < size {
			if err := f.Truncate(size); err != nil {
				return fmt.Errorf("fat: extending the image to %d bytes: %w", size, err)
			}
		}
	}
	return nil
}

// writeReserved writes the reserved area: the boot sector and, on FAT32,
// the FSInfo sector and the backup copies of both at sectors 6 and 7. All
// other reserved sectors are zero.
func (p *plan) writeReserved(w io.WriterAt, bs bootSector) error {
	g := p.g
	b := make([]byte, g.reservedSectors*sectorSize)
	boot := bs.marshal()
	copy(b, boot)
	if g.fatType == FAT32 {
		// Clusters 2 .. used+1 are allocated; the root always is.
		info := fsInfo{freeClusters: uint32(g.clusters - p.used), lastAllocated: uint32(1 + p.used)}
		copy(b[fsInfoSector*sectorSize:], info.marshal())
		copy(b[backupBootSector*sectorSize:], boot)
		copy(b[(backupBootSector+1)*sectorSize:], info.marshal())
	}
	_, err := w.WriteAt(b, 0)
	return err
}

// writeTree writes directory d and, recursively, everything under it.
func (p *plan) writeTree(w io.WriterAt, d, parent *node, label [11]byte, ts dosTime) error {
	off := p.g.rootDirOffset() // the FAT16 root has its own region
	if d.first != 0 {
		off = p.g.clusterOffset(d.first)
	}
	if _, err := w.WriteAt(p.dirBytes(d, parent, label, ts), off); err != nil {
		return fmt.Errorf("writing directory %s/: %w", d.path, err)
	}
	for _, c := range d.children {
		var err error
		if c.isDir {
			err = p.writeTree(w, c, d, label, ts)
		} else {
			err = p.writeFile(w, c)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeFile copies a file into its clusters and zeroes the slack of the last
// one, so the bytes do not depend on what the target held before.
func (p *plan) writeFile(w io.WriterAt, n *node) error {
	if n.size == 0 {
		return nil
	}
	rc, err := n.open()
	if err != nil {
		return fmt.Errorf("%s: %w", n.path, err)
	}
	defer rc.Close()

	off := p.g.clusterOffset(n.first)
	buf := make([]byte, min(n.size, 1<<20))
	for left := n.size; left > 0; {
		chunk := buf[:min(int64(len(buf)), left)]
		if _, err := io.ReadFull(rc, chunk); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: content ends before its declared size of %d bytes", n.path, n.size)
			}
			return fmt.Errorf("%s: %w", n.path, err)
		}
		if _, err := w.WriteAt(chunk, off); err != nil {
			return fmt.Errorf("%s: writing: %w", n.path, err)
		}
		off += int64(len(chunk))
		left -= int64(len(chunk))
	}
	var extra [1]byte
	if _, err := io.ReadFull(rc, extra[:]); err == nil {
		return fmt.Errorf("%s: content is longer than its declared size of %d bytes", n.path, n.size)
	}
	if slack := n.clusters*p.g.clusterSize() - n.size; slack > 0 {
		if _, err := w.WriteAt(make([]byte, slack), off); err != nil {
			return fmt.Errorf("%s: writing: %w", n.path, err)
		}
	}
	return nil
}

// volumeLabel validates and pads a label: at most 11 characters of the
// 8.3 set or spaces, upper-cased as DOS does.
func volumeLabel(label string) ([11]byte, bool, error) {
	var b [11]byte
	if label == "" {
		copy(b[:], noLabel)
		return b, false, nil
	}
	up := strings.ToUpper(label)
	if len(up) > 11 || strings.HasPrefix(up, " ") {
		return b, false, fmt.Errorf("volume label %q: at most 11 characters, not starting with a space", label)
	}
	for i := 0; i < len(up); i++ {
		if up[i] != ' ' && !isShortChar(up[i]) {
			return b, false, fmt.Errorf("volume label %q: %q is not allowed (A-Z, 0-9, space and %s)", label, up[i], shortSpecial)
		}
	}
	copy(b[:], fmt.Sprintf("%-11s", up))
	return b, true, nil
}
