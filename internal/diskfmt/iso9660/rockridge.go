package iso9660

import (
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// Rock Ridge (IEEE P1282, RRIP 1.12) on top of the System Use Sharing
// Protocol (IEEE P1281, SUSP 1.12) gives the ISO 9660 tree what ECMA-119
// cannot hold: POSIX names of any length and case, permissions and owners,
// symbolic links and timestamps. Every directory record carries its entries
// in its System Use field; what does not fit there goes to Continuation
// Areas, chained by CE entries.

// SUSP and RRIP entry sizes that do not depend on content.
const (
	lenSP = 7  // SUSP 5.3
	lenCE = 28 // SUSP 5.1
	lenPX = 36 // RRIP 4.1.1 without the 1.12 serial number, as RRIP_1991A
	lenTF = 5 + 3*7

	// suspEntryMax is the most an entry can hold: its length is one byte.
	suspEntryMax = 255
	// maxLinkLen bounds symlink targets: Rock Ridge has no limit, Linux
	// takes up to 4095 bytes, libisofs refuses 1024 and more.
	maxLinkLen = 1023

	// maxRecordLen is the largest even directory record (its length field
	// is one byte; records are kept even, ECMA-119 9.1.1/9.1.12).
	maxRecordLen = 254
)

// The extension reference of Rock Ridge 1.10 ("RRIP_1991A"), the one mkisofs
// and xorriso write; Linux only uses Rock Ridge (rather than Joliet) when it
// finds an ER entry in the root directory.
const (
	erID  = "RRIP_1991A"
	erDes = "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
	erSrc = "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION."
)

// POSIX file type bits of PX (RRIP 4.1.1, from POSIX stat.h).
const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
)

func suspHeader(sig string, length int) []byte {
	b := make([]byte, length)
	b[0], b[1] = sig[0], sig[1]
	b[2] = byte(length)
	b[3] = 1 // entry version
	return b
}

// spEntry marks the root directory as using SUSP (SUSP 5.3): check bytes
// 0xBE 0xEF, and no bytes to skip at the start of System Use fields.
func spEntry() []byte {
	b := suspHeader("SP", lenSP)
	b[4], b[5], b[6] = 0xBE, 0xEF, 0
	return b
}

// erEntry identifies Rock Ridge as the extension in use (SUSP 5.5).
func erEntry() []byte {
	b := suspHeader("ER", 8+len(erID)+len(erDes)+len(erSrc))
	b[4], b[5], b[6], b[7] = byte(len(erID)), byte(len(erDes)), byte(len(erSrc)), 1
	copy(b[8:], erID+erDes+erSrc)
	return b
}

// pxEntry records the POSIX mode, link count and owner (RRIP 4.1.1).
func pxEntry(mode uint32, nlink, uid, gid uint32) []byte {
	b := suspHeader("PX", lenPX)
	putBoth32(b[4:], mode)
	putBoth32(b[12:], nlink)
	putBoth32(b[20:], uid)
	putBoth32(b[28:], gid)
	return b
}

// posixMode converts a node's permission bits and its type to st_mode bits.
func posixMode(m fs.FileMode, typ uint32) uint32 {
	v := uint32(m.Perm()) | typ
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

// tfEntry records modification, access and attribute change time (RRIP
// 4.1.6, flags MODIFY|ACCESS|ATTRIBUTES, 7-byte form), all the same: the
// image holds one time per entry so that rebuilds are identical.
func tfEntry(sec int64) []byte {
	t := time.Unix(sec, 0)
	b := suspHeader("TF", lenTF)
	b[4] = 0x02 | 0x04 | 0x08
	for i := range 3 {
		putDirDate(b[5+7*i:], t)
	}
	return b
}

// nmEntries records the name (RRIP 4.1.4), in as many NM entries as it
// takes, each but the last flagged CONTINUE.
func nmEntries(name string) [][]byte {
	const chunk = suspEntryMax - 5
	var out [][]byte
	for {
		n := min(len(name), chunk)
		b := suspHeader("NM", 5+n)
		copy(b[5:], name[:n])
		name = name[n:]
		if name != "" {
			b[4] = 0x01 // CONTINUE
		}
		out = append(out, b)
		if name == "" {
			return out
		}
	}
}

// Component Record flags of SL (RRIP 4.1.3.1).
const (
	slContinue = 0x01
	slCurrent  = 0x02
	slParent   = 0x04
	slRoot     = 0x08
)

type slComponent struct {
	flags byte
	text  string
}

// slEntries records a symbolic link target (RRIP 4.1.3) as Component
// Records packed into SL entries; a component too long for the space left
// in an entry is split with the component CONTINUE flag, and every SL entry
// but the last carries the SL CONTINUE flag.
func slEntries(target string) ([][]byte, error) {
	if target == "" {
		return nil, fmt.Errorf("empty symlink target")
	}
	if strings.IndexByte(target, 0) >= 0 {
		return nil, fmt.Errorf("symlink target %q contains NUL", target)
	}
	if len(target) > maxLinkLen {
		return nil, fmt.Errorf("symlink target of %d bytes: at most %d, the longest libisofs (xorriso) reads back", len(target), maxLinkLen)
	}
	var comps []slComponent
	if strings.HasPrefix(target, "/") {
		comps = append(comps, slComponent{flags: slRoot})
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "":
			// leading, trailing or doubled slash: nothing to record
		case ".":
			comps = append(comps, slComponent{flags: slCurrent})
		case "..":
			comps = append(comps, slComponent{flags: slParent})
		default:
			comps = append(comps, slComponent{text: c})
		}
	}

	const room = suspEntryMax - 5 // component bytes per SL entry
	var entries [][]byte
	cur := []byte{}
	flush := func() {
		b := suspHeader("SL", 5+len(cur))
		copy(b[5:], cur)
		entries = append(entries, b)
		cur = []byte{}
	}
	for _, c := range comps {
		text := c.text
		for {
			free := room - len(cur)
			if free < 2+min(len(text), 1) {
				flush()
				continue
			}
			n := min(len(text), free-2)
			flags := c.flags
			if n < len(text) {
				flags |= slContinue
			}
			cur = append(cur, flags, byte(n))
			cur = append(cur, text[:n]...)
			text = text[n:]
			if text == "" {
				break
			}
		}
	}
	flush()
	for _, e := range entries[:len(entries)-1] {
		e[4] = 0x01 // the link continues in the next SL entry
	}
	return entries, nil
}

// ceEntry points at the next Continuation Area (SUSP 5.1).
func ceEntry(a *ceArea) []byte {
	b := suspHeader("CE", lenCE)
	putBoth32(b[4:], a.lba)
	putBoth32(b[12:], a.offset)
	putBoth32(b[20:], uint32(a.size))
	return b
}

// systemUse is the System Use of one directory record once split between
// the record itself and Continuation Areas.
type systemUse struct {
	inline []([]byte)
	areas  []*ceArea // chained: inline -> areas[0] -> areas[1] ...
}

// ceArea is one Continuation Area. It never crosses a block boundary
// (Linux refuses those); lba and offset are set by the layout.
type ceArea struct {
	entries [][]byte
	size    int // including the CE entry to the next area, if any
	lba     uint32
	offset  uint32
}

// splitSystemUse puts entries in the record while they fit in room bytes,
// keeping space for a CE entry when more follow, and the rest in
// Continuation Areas of at most one block each. The order of entries is
// kept, so SP stays first in the root's "." record as SUSP 5.3 requires.
func splitSystemUse(entries [][]byte, room int) systemUse {
	total := 0
	for _, e := range entries {
		total += len(e)
	}
	if total <= room {
		return systemUse{inline: entries}
	}
	var su systemUse
	i, used := 0, 0
	for ; i < len(entries); i++ {
		if used+len(entries[i])+lenCE > room {
			break
		}
		su.inline = append(su.inline, entries[i])
		used += len(entries[i])
	}
	area := &ceArea{}
	for ; i < len(entries); i++ {
		e := entries[i]
		need := len(e)
		if i < len(entries)-1 {
			need += lenCE
		}
		if area.size+need > BlockSize {
			area.size += lenCE
			su.areas = append(su.areas, area)
			area = &ceArea{}
		}
		area.entries = append(area.entries, e)
		area.size += len(e)
	}
	su.areas = append(su.areas, area)
	return su
}

// inlineLen is the size of the System Use field in the record.
func (su systemUse) inlineLen() int {
	n := 0
	for _, e := range su.inline {
		n += len(e)
	}
	if len(su.areas) > 0 {
		n += lenCE
	}
	return n
}

// appendInline serializes the record's System Use field.
func (su systemUse) appendInline(b []byte) []byte {
	for _, e := range su.inline {
		b = append(b, e...)
	}
	if len(su.areas) > 0 {
		b = append(b, ceEntry(su.areas[0])...)
	}
	return b
}

// areaBytes serializes Continuation Area i.
func (su systemUse) areaBytes(i int) []byte {
	a := su.areas[i]
	b := make([]byte, 0, a.size)
	for _, e := range a.entries {
		b = append(b, e...)
	}
	if i+1 < len(su.areas) {
		b = append(b, ceEntry(su.areas[i+1])...)
	}
	return b
}
