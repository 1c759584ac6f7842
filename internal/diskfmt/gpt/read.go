package gpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// maxEntries bounds the entry array a header may declare: the spec sets no
// limit, and a hostile disk would otherwise make Read allocate what it says.
// 1024 entries (256 KiB) is far more than any tool writes.
const maxEntries = 1024

// Disk is what Read finds on a disk besides the table: where the primary
// header said its backup is, which tells a disk that grew after the table
// was written (the backup is no longer at the last LBA).
type Disk struct {
	Table
	// Entries is the size of the entry array in the header.
	Entries int
	// BackupLBA is the alternate LBA in the primary header.
	BackupLBA int64
	// LastUsable is the last LBA a partition may use, by the header.
	LastUsable int64
	// FromBackup is set when the primary copy was damaged and the table
	// came from the backup at the end of the disk.
	FromBackup bool
}

// Read decodes the GPT of a disk of diskSize bytes: the protective MBR's
// boot code and active flag, then the primary header and entry array
// (UEFI 2.10 5.3.2 and 5.3.3), both checked against their CRC32; when the
// primary copy is damaged, the backup at the last LBA. Partitions are
// returned in entry order; an unused entry between used ones is refused,
// since Table numbers partitions by their place in the slice.
//
// The disk is untrusted: every size and offset read from it is checked
// before it is used.
func Read(r io.ReaderAt, diskSize int64) (*Disk, error) {
	if diskSize%SectorSize != 0 || diskSize < (firstUsableLBA+backupSectors+1)*SectorSize {
		return nil, fmt.Errorf("gpt: a %d-byte disk cannot hold a GPT", diskSize)
	}
	mbr := make([]byte, SectorSize)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("gpt: reading the MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, errors.New("gpt: no MBR signature in LBA 0: the disk has no partition table")
	}
	protective := -1
	for i := range 4 {
		if mbr[mbrEntryOffset+i*mbrEntrySize+4] == typeProtective {
			protective = i
		}
	}
	if protective < 0 {
		return nil, errors.New("gpt: the MBR has no protective (0xEE) entry: the disk is MBR-partitioned, not GPT")
	}

	lastLBA := diskSize/SectorSize - 1
	d, perr := readCopy(r, 1, lastLBA)
	if perr != nil {
		var berr error
		d, berr = readCopy(r, lastLBA, lastLBA)
		if berr != nil {
			return nil, fmt.Errorf("gpt: primary table: %v; backup table at LBA %d: %v", perr, lastLBA, berr)
		}
		d.FromBackup = true
	}
	if code := mbr[:mbrBootCodeSize]; !bytes.Equal(code, make([]byte, mbrBootCodeSize)) {
		d.BootCode = bytes.Clone(code)
	}
	d.ProtectiveBootable = mbr[mbrEntryOffset+protective*mbrEntrySize] == 0x80
	return d, nil
}

// readCopy decodes the header at lba and its entry array.
func readCopy(r io.ReaderAt, lba, lastLBA int64) (*Disk, error) {
	b := make([]byte, SectorSize)
	if _, err := r.ReadAt(b, lba*SectorSize); err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	le := binary.LittleEndian
	if string(b[0:8]) != headerSignature {
		return nil, errors.New("no \"EFI PART\" signature")
	}
	size := le.Uint32(b[12:])
	if size < headerSize || size > SectorSize {
		return nil, fmt.Errorf("header size %d is outside %d-%d", size, headerSize, SectorSize)
	}
	want := le.Uint32(b[16:])
	h := bytes.Clone(b[:size])
	clear(h[16:20])
	if got := crc32.ChecksumIEEE(h); got != want {
		return nil, fmt.Errorf("header CRC32 is %08x, the header says %08x", got, want)
	}
	if my := le.Uint64(b[24:]); my != uint64(lba) {
		return nil, fmt.Errorf("header at LBA %d says it is at LBA %d", lba, my)
	}
	first, last := le.Uint64(b[40:]), le.Uint64(b[48:])
	entriesLBA, n, esize := le.Uint64(b[72:]), le.Uint32(b[80:]), le.Uint32(b[84:])
	switch {
	case esize != EntrySize:
		return nil, fmt.Errorf("entries of %d bytes: only %d-byte entries are supported", esize, EntrySize)
	case n == 0 || n > maxEntries:
		return nil, fmt.Errorf("%d entries: 1-%d are supported", n, maxEntries)
	case first > last || last >= uint64(lastLBA) || first < 2:
		return nil, fmt.Errorf("usable LBAs %d-%d do not fit a %d-sector disk", first, last, lastLBA+1)
	case entriesLBA < 2 || entriesLBA > uint64(lastLBA):
		return nil, fmt.Errorf("entry array at LBA %d is outside the disk", entriesLBA)
	}
	array := make([]byte, int(n)*EntrySize)
	if _, err := r.ReadAt(array, int64(entriesLBA)*SectorSize); err != nil {
		return nil, fmt.Errorf("reading %d entries at LBA %d: %w", n, entriesLBA, err)
	}
	if got, want := crc32.ChecksumIEEE(array), le.Uint32(b[88:]); got != want {
		return nil, fmt.Errorf("entry array CRC32 is %08x, the header says %08x", got, want)
	}

	var g GUID
	copy(g[:], decodeGUID(b[56:72]))
	d := &Disk{
		Table:      Table{DiskGUID: g},
		Entries:    int(n),
		BackupLBA:  int64(le.Uint64(b[32:])),
		LastUsable: int64(last),
	}
	gap := 0
	for i := range int(n) {
		p, used, err := decodeEntry(array[i*EntrySize:(i+1)*EntrySize], first, last)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		if !used {
			if gap == 0 {
				gap = i + 1
			}
			continue
		}
		if gap != 0 {
			return nil, fmt.Errorf("entry %d is used after unused entry %d: tables with holes are not supported", i+1, gap)
		}
		d.Partitions = append(d.Partitions, p)
	}
	return d, nil
}

// decodeEntry reads one entry; an all-zero type GUID is an unused entry.
func decodeEntry(b []byte, first, last uint64) (Partition, bool, error) {
	var p Partition
	copy(p.Type[:], decodeGUID(b[0:16]))
	if p.Type.IsZero() {
		return p, false, nil
	}
	copy(p.GUID[:], decodeGUID(b[16:32]))
	le := binary.LittleEndian
	s, e := le.Uint64(b[32:]), le.Uint64(b[40:])
	if s < first || e > last || e < s {
		return p, false, fmt.Errorf("LBAs %d-%d are outside the usable %d-%d", s, e, first, last)
	}
	p.Start, p.Size = int64(s)*SectorSize, int64(e-s+1)*SectorSize
	p.Attributes = le.Uint64(b[48:])
	name := make([]uint16, 0, MaxNameLen)
	for i := range MaxNameLen {
		c := le.Uint16(b[56+2*i:])
		if c == 0 {
			break
		}
		name = append(name, c)
	}
	p.Name = string(utf16.Decode(name))
	return p, true, nil
}

// decodeGUID turns the on-disk mixed-endian form back into string order
// (Encode's inverse).
func decodeGUID(b []byte) []byte {
	return []byte{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]}
}
