package fat

import (
	"encoding/binary"
	"time"
)

const dirEntrySize = 32

// Directory entry attributes (fatgen103 "FAT Directory Structure").
const (
	attrVolumeID  = 0x08
	attrDirectory = 0x10
	attrArchive   = 0x20 // "changed since last backup": set on new files, as mcopy does
	attrLongName  = 0x0F // read-only|hidden|system|volume: marks an LFN entry
)

// dirEntry is a 32-byte short (8.3) directory entry.
type dirEntry struct {
	name    [11]byte // base padded to 8, extension padded to 3, no dot
	attr    byte
	cluster uint32 // first cluster, 0 for an empty file (and ".." to the root)
	size    uint32 // file size; 0 for directories
	time    dosTime
}

func (e dirEntry) marshal(b []byte) {
	le := binary.LittleEndian
	copy(b[0:11], e.name[:])
	b[11] = e.attr
	// 12: NT reserved (case flags), unused since mixed-case names get LFNs.
	b[13] = e.time.tenths
	le.PutUint16(b[14:], e.time.time) // creation
	le.PutUint16(b[16:], e.time.date)
	le.PutUint16(b[18:], e.time.date) // last access (date only)
	le.PutUint16(b[20:], uint16(e.cluster>>16))
	le.PutUint16(b[22:], e.time.time) // last write
	le.PutUint16(b[24:], e.time.date)
	le.PutUint16(b[26:], uint16(e.cluster))
	le.PutUint32(b[28:], e.size)
}

// dosTime is a FAT timestamp: local-time-less date and time fields with
// 2-second resolution, plus the creation time's tenths of a second.
type dosTime struct {
	date, time uint16
	tenths     uint8
}

var (
	dosEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	dosLast  = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
)

// toDOSTime converts t, taken as UTC (reproducible builds must not depend on
// the builder's time zone), clamped to the range FAT can represent: a
// SOURCE_DATE_EPOCH of 0 becomes 1980-01-01.
func toDOSTime(t time.Time) dosTime {
	t = t.UTC()
	if t.Before(dosEpoch) {
		t = dosEpoch
	}
	if t.After(dosLast) {
		t = dosLast
	}
	return dosTime{
		date:   uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day()),
		time:   uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2),
		tenths: uint8(t.Second()%2*100 + t.Nanosecond()/10_000_000),
	}
}
