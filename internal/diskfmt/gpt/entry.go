package gpt

import (
	"encoding/binary"
	"unicode/utf16"
)

const (
	// EntryCount and EntrySize are the usual entry array geometry: 128
	// entries of 128 bytes fill 32 sectors, the minimum UEFI requires
	// (16 KiB), which is what every partitioning tool writes.
	EntryCount = 128
	EntrySize  = 128

	// MaxNameLen is the partition name capacity in UTF-16 code units.
	MaxNameLen = 36

	entryArraySectors = EntryCount * EntrySize / SectorSize
)

// Partition attribute bits (UEFI 2.10 table 5.8).
const (
	// AttrRequired marks a partition the platform needs to function (firmware
	// and OS tools should not delete or move it).
	AttrRequired uint64 = 1 << 0
	// AttrNoBlockIO asks firmware not to produce an EFI_BLOCK_IO_PROTOCOL for
	// the partition.
	AttrNoBlockIO uint64 = 1 << 1
	// AttrLegacyBIOSBootable is the "legacy_boot" flag some BIOS boot code
	// looks for.
	AttrLegacyBIOSBootable uint64 = 1 << 2
	// AttrReadOnly is bit 60, type-specific: on a BasicData partition it is
	// Microsoft's read-only flag (libisofs sets it on hybrid ISO gaps).
	AttrReadOnly uint64 = 1 << 60
)

// entryArray encodes an array of count entries (UEFI 2.10 5.3.3), padded to
// whole sectors; entries past the partitions stay zero, which marks them
// unused.
func entryArray(parts []Partition, count int) []byte {
	b := make([]byte, (count*EntrySize+SectorSize-1)/SectorSize*SectorSize)
	for i, p := range parts {
		encodeEntry(b[i*EntrySize:(i+1)*EntrySize], p)
	}
	return b
}

// encodeEntry writes one entry. The ending LBA is inclusive.
func encodeEntry(b []byte, p Partition) {
	le := binary.LittleEndian
	t := p.Type.Encode()
	u := p.GUID.Encode()
	copy(b[0:16], t[:])
	copy(b[16:32], u[:])
	le.PutUint64(b[32:], uint64(p.Start/SectorSize))
	le.PutUint64(b[40:], uint64((p.Start+p.Size)/SectorSize-1))
	le.PutUint64(b[48:], p.Attributes)
	for i, c := range utf16.Encode([]rune(p.Name)) {
		le.PutUint16(b[56+2*i:], c) // UTF-16LE, zero padded, no terminator needed
	}
}
