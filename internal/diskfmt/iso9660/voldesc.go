package iso9660

import (
	"encoding/binary"
	"time"
)

// The Volume Descriptor Set starts at block 16, after the System Area
// (ECMA-119 6.2.1, 8): the Primary Volume Descriptor, the El Torito Boot
// Record, the Joliet Supplementary Volume Descriptor, then a Terminator.

const (
	vdBoot          = 0
	vdPrimary       = 1
	vdSupplementary = 2
	vdTerminator    = 255

	standardID = "CD001"

	// firstVDLBA is where the descriptors start (ECMA-119 6.2.1).
	firstVDLBA = 16
)

func vdHeader(typ byte) []byte {
	b := make([]byte, BlockSize)
	b[0] = typ
	copy(b[1:6], standardID)
	b[6] = 1 // descriptor version
	return b
}

// volumeDescriptor builds a PVD (ECMA-119 8.4) or, for Joliet, an SVD
// (8.5). They share their layout: Joliet writes its text fields in UCS-2
// and announces it with the escape sequence "%/E" (UCS-2 level 3).
func volumeDescriptor(l *layout, joliet bool) []byte {
	typ := byte(vdPrimary)
	t := l.isoTree
	if joliet {
		typ = vdSupplementary
		t = l.jolietTree
	}
	b := vdHeader(typ)
	fill := padString
	if joliet {
		fill = padUCS2
	}
	fill(b[8:40], "")                 // system identifier
	fill(b[40:72], l.img.VolumeID)    // volume identifier
	putBoth32(b[80:], l.volumeBlocks) // volume space size
	if joliet {
		copy(b[88:], "%/E")
	}
	putBoth16(b[120:], 1)         // volume set size
	putBoth16(b[124:], 1)         // volume sequence number
	putBoth16(b[128:], BlockSize) // logical block size
	putBoth32(b[132:], uint32(t.ptSize))
	binary.LittleEndian.PutUint32(b[140:], t.ptL)
	binary.BigEndian.PutUint32(b[148:], t.ptM)
	// 156: the root directory record, without System Use (9.1, 8.4.18).
	root := record{ident: identDot, target: l.root, joliet: joliet}
	copy(b[156:190], appendRecord(nil, &root))
	fill(b[190:318], "")               // volume set identifier
	fill(b[318:446], "")               // publisher
	fill(b[446:574], "")               // data preparer
	fill(b[574:702], "")               // application
	fill(b[702:739], "")               // copyright file
	fill(b[739:776], "")               // abstract file
	fill(b[776:813], "")               // bibliographic file
	putVolDate(b[813:], l.img.ModTime) // creation
	putVolDate(b[830:], l.img.ModTime) // modification
	putVolDate(b[847:], time.Time{})   // expiration: none
	putVolDate(b[864:], time.Time{})   // effective: immediately
	b[881] = 1                         // file structure version
	return b
}

// padUCS2 writes s in UCS-2 big-endian and pads with UCS-2 spaces; an odd
// final byte (the 37-byte file identifier fields) stays zero.
func padUCS2(b []byte, s string) {
	u := ucs2(s)
	if len(u) > len(b)&^1 {
		u = u[:len(b)&^1]
	}
	n := copy(b, u)
	for ; n+1 < len(b); n += 2 {
		b[n], b[n+1] = 0, ' '
	}
}

// bootRecord is the El Torito Boot Record Volume Descriptor (El Torito
// 2.0, figure 7): it names the boot system and points at the catalog.
func bootRecord(catalogLBA uint32) []byte {
	b := vdHeader(vdBoot)
	copy(b[7:39], "EL TORITO SPECIFICATION") // rest zero
	binary.LittleEndian.PutUint32(b[71:], catalogLBA)
	return b
}

// terminator ends the descriptor set (ECMA-119 8.3).
func terminator() []byte { return vdHeader(vdTerminator) }
