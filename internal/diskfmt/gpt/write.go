package gpt

import (
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// Write writes the partitioning structures of t for a disk of diskSize
// bytes: the backup entry array (the 32 sectors before the last) and the
// backup header (last LBA), the primary header (LBA 1) and entry array
// (LBA 2-33), and the protective MBR (LBA 0). Nothing else is written: the caller puts
// each file system at Partition.Offset().
func (t *Table) Write(w io.WriterAt, diskSize int64) error {
	if err := t.Validate(diskSize); err != nil {
		return err
	}
	g, err := newGeometry(diskSize)
	if err != nil {
		return fmt.Errorf("gpt: %w", err)
	}

	mbr, err := protectiveMBR(g.totalSectors, t.BootCode, t.ProtectiveBootable)
	if err != nil {
		return fmt.Errorf("gpt: %w", err)
	}
	primary, backup := t.Encode(g.totalSectors, EntryCount)
	// Backup first, then primary, then MBR: when w is a disk being changed
	// in place (it has Sync, each write is flushed before the next), a
	// stop in between leaves the old primary, still valid, or the new one
	// with its backup already in place.
	sync, _ := w.(interface{ Sync() error })
	for _, s := range []struct {
		what string
		lba  int64
		data []byte
	}{
		{"backup GPT", g.totalSectors - int64(len(backup))/SectorSize, backup},
		{"primary GPT", 1, primary},
		{"protective MBR", 0, mbr},
	} {
		if _, err := w.WriteAt(s.data, s.lba*SectorSize); err != nil {
			return fmt.Errorf("gpt: writing %s at LBA %d: %w", s.what, s.lba, err)
		}
		if sync != nil {
			if err := sync.Sync(); err != nil {
				return fmt.Errorf("gpt: writing %s: %w", s.what, err)
			}
		}
	}
	return nil
}

// Encode returns the two copies of the GPT of t (not the MBR) for a disk of
// totalSectors sectors whose entry array holds entries entries: primary is
// the header and then the array, for LBA 1 on; backup is the array and then
// the header, for the very end of the disk. The usable area is what lies
// between them. Write uses EntryCount; a hybrid ISO uses more, so that the
// primary GPT fills its 32 KiB system area. Encode does not validate t: the
// caller (Write, through Validate) makes sure the partitions fit.
func (t *Table) Encode(totalSectors int64, entries int) (primary, backup []byte) {
	array := entryArray(t.Partitions, entries)
	arraySectors := uint64(len(array) / SectorSize)
	last := uint64(totalSectors - 1)
	h := header{
		myLBA:        1,
		alternateLBA: last,
		firstUsable:  2 + arraySectors,
		lastUsable:   last - arraySectors - 1,
		diskGUID:     t.DiskGUID,
		entriesLBA:   2,
		// The CRC covers the entries, not the padding to a whole sector.
		entriesCRC: crc32.ChecksumIEEE(array[:entries*EntrySize]),
		numEntries: uint32(entries),
	}
	primary = slices.Concat(h.marshal(), array)
	h.myLBA, h.alternateLBA, h.entriesLBA = last, 1, last-arraySectors
	backup = slices.Concat(array, h.marshal())
	return primary, backup
}
