package gpt

import (
	"encoding/binary"
	"hash/crc32"
)

const (
	headerSignature = "EFI PART"
	headerRevision  = 0x00010000 // GPT 1.0, the only revision UEFI defines
	headerSize      = 92
)

// header is a GPT header (UEFI 2.10 5.3.2). The primary and the backup differ
// only in myLBA, alternateLBA and entriesLBA.
type header struct {
	myLBA, alternateLBA     uint64
	firstUsable, lastUsable uint64
	diskGUID                GUID
	entriesLBA              uint64
	entriesCRC              uint32 // CRC32 of the whole entry array
	numEntries              uint32 // of EntrySize bytes each
}

// marshal encodes the header into one sector, computing its CRC32 over the
// 92 header bytes with the CRC field taken as zero.
func (h header) marshal() []byte {
	b := make([]byte, SectorSize)
	le := binary.LittleEndian
	copy(b[0:8], headerSignature)
	le.PutUint32(b[8:], headerRevision)
	le.PutUint32(b[12:], headerSize)
	// 16: header CRC32, filled below; 20: reserved, zero.
	le.PutUint64(b[24:], h.myLBA)
	le.PutUint64(b[32:], h.alternateLBA)
	le.PutUint64(b[40:], h.firstUsable)
	le.PutUint64(b[48:], h.lastUsable)
	g := h.diskGUID.Encode()
	copy(b[56:72], g[:])
	le.PutUint64(b[72:], h.entriesLBA)
	le.PutUint32(b[80:], h.numEntries)
	le.PutUint32(b[84:], EntrySize)
	le.PutUint32(b[88:], h.entriesCRC)
	le.PutUint32(b[16:], crc32.ChecksumIEEE(b[:headerSize]))
	return b
}
