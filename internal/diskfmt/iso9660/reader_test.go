package iso9660

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// A small, independent ISO 9660 / Rock Ridge / Joliet reader, written from
// the specifications, to check what Write produces without trusting its own
// layout code.

type isoImage struct {
	b []byte
}

func (im isoImage) block(lba uint32) []byte {
	return im.b[int64(lba)*BlockSize : int64(lba+1)*BlockSize]
}

func (im isoImage) extent(lba, size uint32) []byte {
	return im.b[int64(lba)*BlockSize : int64(lba)*BlockSize+int64(size)]
}

// descriptors returns the volume descriptors by type (the first of each).
func (im isoImage) descriptors(t *testing.T) map[byte][]byte {
	t.Helper()
	out := map[byte][]byte{}
	for lba := uint32(firstVDLBA); ; lba++ {
		vd := im.block(lba)
		if string(vd[1:6]) != "CD001" || vd[6] != 1 {
			t.Fatalf("block %d: not a volume descriptor: % x", lba, vd[:8])
		}
		if _, ok := out[vd[0]]; !ok {
			out[vd[0]] = vd
		}
		if vd[0] == vdTerminator {
			return out
		}
	}
}

type isoEntry struct {
	ident    []byte
	lba      uint32
	size     uint32
	flags    byte
	date     []byte
	rrName   string
	hasPX    bool
	mode     uint32
	nlink    uint32
	uid, gid uint32
	link     string
	tf       []byte
	er       string
	sp       bool
	ceCount  int
	suspSigs []string
}

func both32(t *testing.T, b []byte, what string) uint32 {
	t.Helper()
	le, be := binary.LittleEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
	if le != be {
		t.Fatalf("%s: both-endian mismatch %d != %d", what, le, be)
	}
	return le
}

// readDir parses the records of a directory extent, following Rock Ridge
// continuation areas.
func (im isoImage) readDir(t *testing.T, lba, size uint32, rr bool) []isoEntry {
	t.Helper()
	data := im.extent(lba, size)
	var out []isoEntry
	for off := 0; off < len(data); {
		l := int(data[off])
		if l == 0 {
			off = (off/BlockSize + 1) * BlockSize
			continue
		}
		if off%BlockSize+l > BlockSize {
			t.Fatalf("dir at %d: record at %d crosses a block boundary", lba, off)
		}
		if l%2 != 0 {
			t.Fatalf("dir at %d: odd record length %d", lba, l)
		}
		r := data[off : off+l]
		e := isoEntry{
			lba:   both32(t, r[2:], "extent"),
			size:  both32(t, r[10:], "size"),
			flags: r[25],
		}
		e.date = append([]byte{}, r[18:25]...)
		fl := int(r[32])
		e.ident = append([]byte{}, r[33:33+fl]...)
		su := r[33+fl+(1-fl%2):]
		if rr {
			im.parseSUSP(t, su, &e)
		}
		out = append(out, e)
		off += l
	}
	return out
}

func (im isoImage) parseSUSP(t *testing.T, su []byte, e *isoEntry) {
	t.Helper()
	var linkParts []string
	linkCont := false
	nameDone := false
	for {
		var ce []byte
		for len(su) >= 4 {
			sig, l := string(su[:2]), int(su[2])
			if l < 4 || l > len(su) {
				t.Fatalf("%q: bad SUSP entry %s length %d (have %d)", e.ident, sig, l, len(su))
			}
			d := su[4:l]
			e.suspSigs = append(e.suspSigs, sig)
			switch sig {
			case "SP":
				if d[0] != 0xBE || d[1] != 0xEF {
					t.Fatalf("bad SP check bytes")
				}
				e.sp = true
			case "ER":
				e.er = string(d[4 : 4+d[0]])
			case "CE":
				ce = su[:l]
				e.ceCount++
			case "PX":
				e.hasPX = true
				e.mode = both32(t, d[0:], "PX mode")
				e.nlink = both32(t, d[8:], "PX nlink")
				e.uid = both32(t, d[16:], "PX uid")
				e.gid = both32(t, d[24:], "PX gid")
			case "TF":
				e.tf = append([]byte{}, d...)
			case "NM":
				if nameDone {
					t.Fatalf("%q: NM after a final NM", e.ident)
				}
				e.rrName += string(d[1:])
				nameDone = d[0]&1 == 0
			case "SL":
				comps := d[1:]
				for len(comps) > 0 {
					flags, n := comps[0], int(comps[1])
					text := string(comps[2 : 2+n])
					switch {
					case flags&slRoot != 0:
						text = "\x00root"
					case flags&slCurrent != 0:
						text = "."
					case flags&slParent != 0:
						text = ".."
					}
					if linkCont {
						linkParts[len(linkParts)-1] += text
					} else {
						linkParts = append(linkParts, text)
					}
					linkCont = flags&slContinue != 0
					comps = comps[2+n:]
				}
			}
			su = su[l:]
		}
		if ce == nil {
			break
		}
		blk := binary.LittleEndian.Uint32(ce[4:])
		off := binary.LittleEndian.Uint32(ce[12:])
		n := binary.LittleEndian.Uint32(ce[20:])
		if off+n > BlockSize {
			t.Fatalf("%q: continuation area crosses a block (offset %d, length %d)", e.ident, off, n)
		}
		su = im.block(blk)[off : off+n]
	}
	if linkParts != nil {
		s := strings.Join(linkParts, "/")
		if strings.HasPrefix(s, "\x00root") {
			s = "/" + strings.TrimPrefix(strings.TrimPrefix(s, "\x00root"), "/")
		}
		e.link = s
	}
}

// fileInfo is one path of the tree as the reader sees it.
type fileInfo struct {
	entry isoEntry
	data  []byte
}

// walkRR returns every path below the root, with Rock Ridge names.
func (im isoImage) walkRR(t *testing.T, rootLBA, rootSize uint32) map[string]fileInfo {
	t.Helper()
	out := map[string]fileInfo{}
	var walk func(prefix string, lba, size uint32, depth int)
	walk = func(prefix string, lba, size uint32, depth int) {
		ents := im.readDir(t, lba, size, true)
		if len(ents) < 2 || !bytes.Equal(ents[0].ident, identDot) || !bytes.Equal(ents[1].ident, identDotDot) {
			t.Fatalf("%s: directory does not start with . and ..", prefix)
		}
		if depth == 0 {
			out["/"] = fileInfo{entry: ents[0]}
		}
		for i := 2; i < len(ents); i++ {
			e := ents[i]
			if i > 2 && !isoIdentLess(ents[i-1].ident, e.ident) {
				t.Errorf("%s: %q sorts after %q", prefix, ents[i-1].ident, e.ident)
			}
			p := prefix + e.rrName
			if e.flags&flagDirectory != 0 {
				out[p] = fileInfo{entry: e}
				walk(p+"/", e.lba, e.size, depth+1)
				continue
			}
			out[p] = fileInfo{entry: e, data: im.extent(e.lba, e.size)}
		}
	}
	walk("/", rootLBA, rootSize, 0)
	return out
}

// isoIdentLess is ECMA-119 9.3 ordering of file identifiers.
func isoIdentLess(a, b []byte) bool {
	split := func(id []byte) (string, string) {
		s := string(id)
		s, _, _ = strings.Cut(s, ";")
		name, ext, _ := strings.Cut(s, ".")
		return name, ext
	}
	an, ae := split(a)
	bn, be := split(b)
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }
	n := max(len(an), len(bn))
	if pad(an, n) != pad(bn, n) {
		return pad(an, n) < pad(bn, n)
	}
	n = max(len(ae), len(be))
	return pad(ae, n) < pad(be, n)
}

// walkJoliet returns every path of the Joliet tree, names decoded.
func (im isoImage) walkJoliet(t *testing.T, rootLBA, rootSize uint32) map[string]isoEntry {
	t.Helper()
	out := map[string]isoEntry{}
	var walk func(prefix string, lba, size uint32)
	walk = func(prefix string, lba, size uint32) {
		for _, e := range im.readDir(t, lba, size, false)[2:] {
			u := make([]uint16, len(e.ident)/2)
			for i := range u {
				u[i] = binary.BigEndian.Uint16(e.ident[2*i:])
			}
			name := strings.TrimSuffix(string(utf16.Decode(u)), ";1")
			if len(u) > jolietNameMax+3 { // name, ".", ext, ";1"
				t.Errorf("%s%s: Joliet name of %d characters", prefix, name, len(u))
			}
			out[prefix+name] = e
			if e.flags&flagDirectory != 0 {
				walk(prefix+name+"/", e.lba, e.size)
			}
		}
	}
	walk("/", rootLBA, rootSize)
	return out
}

func rootOf(t *testing.T, vd []byte) (uint32, uint32) {
	t.Helper()
	r := vd[156:190]
	if r[0] != 34 || r[32] != 1 || r[33] != 0 {
		t.Fatalf("bad root directory record % x", r)
	}
	return both32(t, r[2:], "root extent"), both32(t, r[10:], "root size")
}

// pathTable parses a path table and checks it against the directories.
func (im isoImage) pathTable(t *testing.T, vd []byte, little bool) []ptEntry {
	t.Helper()
	size := both32(t, vd[132:], "path table size")
	var lba uint32
	var order binary.ByteOrder = binary.LittleEndian
	if little {
		lba = binary.LittleEndian.Uint32(vd[140:])
	} else {
		lba = binary.BigEndian.Uint32(vd[148:])
		order = binary.BigEndian
	}
	b := im.extent(lba, size)
	var out []ptEntry
	for len(b) > 0 {
		n := int(b[0])
		out = append(out, ptEntry{ident: append([]byte{}, b[8:8+n]...), lba: order.Uint32(b[2:]), parent: order.Uint16(b[6:])})
		b = b[8+n+n%2:]
	}
	return out
}

func decodeDirDate(b []byte) time.Time {
	return time.Date(1900+int(b[0]), time.Month(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]), 0, time.UTC)
}

func (e isoEntry) String() string {
	return fmt.Sprintf("%q lba=%d size=%d mode=%o link=%q", e.rrName, e.lba, e.size, e.mode, e.link)
}
