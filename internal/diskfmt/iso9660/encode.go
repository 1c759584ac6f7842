package iso9660

import (
	"encoding/binary"
	"fmt"
	"time"
)

// BlockSize is the ISO 9660 logical block (and sector) size. ECMA-119 allows
// others; every CD, El Torito and reader uses 2048.
const BlockSize = 2048

// sectorSize is the unit of MBR, GPT and El Torito sector counts.
const sectorSize = 512

// ECMA-119 7.2.3 / 7.3.3: numbers recorded in both byte orders, so that
// readers of either endianness take them as they are.
func putBoth16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func putBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

// padString copies s into b and fills the rest with spaces (ECMA-119 7.4.3:
// a- and d-character fields are padded with SPACE).
func padString(b []byte, s string) {
	n := copy(b, s)
	for i := n; i < len(b); i++ {
		b[i] = ' '
	}
}

// Dates outside what the 7-byte form can hold are clamped to its range
// (years 1900-2155) rather than wrapped.
var (
	minDate = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	maxDate = time.Date(2155, 12, 31, 23, 59, 59, 0, time.UTC)
)

// putDirDate writes the 7-byte "Recording Date and Time" of a directory
// record (ECMA-119 9.1.5), also used by Rock Ridge TF (RRIP 4.1.6). Times
// are written in UTC with a zero GMT offset, so that the bytes do not
// depend on the builder's time zone.
func putDirDate(b []byte, t time.Time) {
	t = t.UTC()
	if t.Before(minDate) {
		t = minDate
	} else if t.After(maxDate) {
		t = maxDate
	}
	b[0] = byte(t.Year() - 1900)
	b[1] = byte(t.Month())
	b[2] = byte(t.Day())
	b[3] = byte(t.Hour())
	b[4] = byte(t.Minute())
	b[5] = byte(t.Second())
	b[6] = 0 // offset from GMT in 15-minute intervals
}

// putVolDate writes the 17-byte date of a volume descriptor (ECMA-119
// 8.4.26.1): "YYYYMMDDHHMMSScc" in digits and the GMT offset. The zero
// time writes the "not specified" form: sixteen '0' digits and offset 0.
func putVolDate(b []byte, t time.Time) {
	if t.IsZero() {
		copy(b, "0000000000000000")
		b[16] = 0
		return
	}
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		t = maxDate
	}
	copy(b, fmt.Sprintf("%04d%02d%02d%02d%02d%02d%02d",
		t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1e7))
	b[16] = 0
}

// blocks is the number of whole blocks that hold n bytes.
func blocks(n int64) int64 { return (n + BlockSize - 1) / BlockSize }
