package gpt

import (
	"fmt"
	"hash/crc32"
	"io"
)

// Write writes the partitioning structures of t for a disk of diskSize
// bytes: the protective MBR (LBA 0), the primary header (LBA 1) and entry
// array (LBA 2-33), the backup entry array (the 32 sectors before the last)
// and the backup header (last LBA). Nothing else is written: the caller puts
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
	entries := entryArray(t.Partitions)
	backupEntriesLBA := g.lastLBA - entryArraySectors
	primary := header{
		myLBA:          1,
		alternateLBA:   uint64(g.lastLBA),
		firstUsable:    firstUsableLBA,
		lastUsable:     uint64(g.lastUsable),
		diskGUID:       t.DiskGUID,
		entriesLBA:     2,
		entriesCRC:     crc32.ChecksumIEEE(entries),
		numEntries:     EntryCount,
		entrySizeBytes: EntrySize,
	}
	backup := primary
	backup.myLBA, backup.alternateLBA = uint64(g.lastLBA), 1
	backup.entriesLBA = uint64(backupEntriesLBA)

	for _, s := range []struct {
		what string
		lba  int64
		data []byte
	}{
		{"protective MBR", 0, mbr},
		{"primary header", 1, primary.marshal()},
		{"primary entry array", 2, entries},
		{"backup entry array", backupEntriesLBA, entries},
		{"backup header", g.lastLBA, backup.marshal()},
	} {
		if _, err := w.WriteAt(s.data, s.lba*SectorSize); err != nil {
			return fmt.Errorf("gpt: writing %s at LBA %d: %w", s.what, s.lba, err)
		}
	}
	return nil
}
