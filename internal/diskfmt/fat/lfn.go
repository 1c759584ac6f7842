package fat

import (
	"encoding/binary"
	"unicode/utf16"
)

const (
	lfnCharsPerEntry = 13
	lfnLastFlag      = 0x40 // on the sequence number of the last (first stored) entry
	maxLFNLen        = 255  // UTF-16 code units
)

// lfnChecksum is the checksum of the 11-byte short name that every LFN
// entry carries, so that a driver can tell an LFN left over from a deleted
// or renamed file from the one belonging to the short entry after it
// (Microsoft's ChkSum: rotate right by one, add the next byte).
func lfnChecksum(short [11]byte) byte {
	var sum byte
	for _, c := range short {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

// lfnEntries returns the VFAT long-name entries of name, in on-disk order:
// the last part first (flagged 0x40), down to part 1 just before the short
// entry. Each holds 13 UTF-16LE code units split over three fields; the
// name ends with a 0x0000 terminator when it does not fill the last part,
// and the rest is padded with 0xFFFF.
func lfnEntries(name string, short [11]byte) [][dirEntrySize]byte {
	units := utf16.Encode([]rune(name))
	n := (len(units) + lfnCharsPerEntry - 1) / lfnCharsPerEntry
	padded := make([]uint16, n*lfnCharsPerEntry)
	copy(padded, units)
	for i := len(units); i < len(padded); i++ {
		if i == len(units) {
			padded[i] = 0x0000
		} else {
			padded[i] = 0xFFFF
		}
	}

	sum := lfnChecksum(short)
	entries := make([][dirEntrySize]byte, n)
	for seq := 1; seq <= n; seq++ {
		e := &entries[n-seq]
		e[0] = byte(seq)
		if seq == n {
			e[0] |= lfnLastFlag
		}
		e[11] = attrLongName
		// 12: type 0; 26: first cluster, always 0.
		e[13] = sum
		part := padded[(seq-1)*lfnCharsPerEntry : seq*lfnCharsPerEntry]
		for i, u := range part {
			var off int
			switch {
			case i < 5:
				off = 1 + 2*i
			case i < 11:
				off = 14 + 2*(i-5)
			default:
				off = 28 + 2*(i-11)
			}
			binary.LittleEndian.PutUint16(e[off:], u)
		}
	}
	return entries
}
