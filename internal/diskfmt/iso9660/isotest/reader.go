package isotest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf16"
)

// A small ISO 9660 / Rock Ridge / Joliet reader, written from the
// specifications, to check what a writer produces without trusting its
// layout code.

// BlockSize is the logical block size every image of this package has.
const BlockSize = 2048

// Volume descriptor types (ECMA-119 8.1.1) and the first descriptor's block.
const (
	VDBoot          = 0
	VDPrimary       = 1
	VDSupplementary = 2
	VDTerminator    = 255
	firstVDLBA      = 16
)

// FlagDirectory is the directory bit of a directory record's flags.
const FlagDirectory = 0x02

// Rock Ridge SL component flags (RRIP 4.1.3.1).
const (
	slContinue = 0x01
	slCurrent  = 0x02
	slParent   = 0x04
	slRoot     = 0x08
)

// jolietNameMax is the longest Joliet name (name and extension) writers
// produce, in UCS-2 characters, as libisofs counts them.
const jolietNameMax = 64

var (
	identDot    = []byte{0x00}
	identDotDot = []byte{0x01}
)

// Image is an ISO 9660 image in memory.
type Image struct {
	b []byte
}

// New reads the image held in b.
func New(b []byte) *Image { return &Image{b: b} }

// Load reads the image file at path.
func Load(path string) (*Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return New(b), nil
}

// Extent returns size bytes from block lba, nil if the image is shorter.
func (im *Image) Extent(lba, size uint32) []byte {
	b, _ := im.extent(lba, size)
	return b
}

// Block returns block lba, nil if the image is shorter.
func (im *Image) Block(lba uint32) []byte { return im.Extent(lba, BlockSize) }

func (im *Image) extent(lba, size uint32) ([]byte, error) {
	start, end := int64(lba)*BlockSize, int64(lba)*BlockSize+int64(size)
	if end > int64(len(im.b)) {
		return nil, fmt.Errorf("extent at block %d of %d bytes ends after the image (%d bytes)", lba, size, len(im.b))
	}
	return im.b[start:end], nil
}

// Descriptors returns the volume descriptors by type (the first of each),
// up to the terminator.
func (im *Image) Descriptors() (map[byte][]byte, error) {
	out := map[byte][]byte{}
	for lba := uint32(firstVDLBA); ; lba++ {
		vd, err := im.extent(lba, BlockSize)
		if err != nil {
			return nil, fmt.Errorf("volume descriptors: %w", err)
		}
		if string(vd[1:6]) != "CD001" || vd[6] != 1 {
			return nil, fmt.Errorf("block %d: not a volume descriptor: % x", lba, vd[:8])
		}
		if _, ok := out[vd[0]]; !ok {
			out[vd[0]] = vd
		}
		if vd[0] == VDTerminator {
			return out, nil
		}
	}
}

// Entry is a directory record with its Rock Ridge entries.
type Entry struct {
	Ident    []byte
	LBA      uint32
	Size     uint32
	Flags    byte
	Date     []byte // 7-byte recording date
	Name     string // Rock Ridge name (NM)
	HasPX    bool
	Mode     uint32 // PX st_mode
	Nlink    uint32
	UID, GID uint32
	Link     string // SL target, components joined with "/"
	TF       []byte // TF entry data: flags and times
	ER       string // ER extension identifier
	SP       bool
	CECount  int      // continuation areas followed
	SUSPSigs []string // signatures in order
}

func (e Entry) String() string {
	return fmt.Sprintf("%q lba=%d size=%d mode=%o link=%q", e.Name, e.LBA, e.Size, e.Mode, e.Link)
}

// Both32 reads a 32-bit number recorded in both byte orders (ECMA-119
// 7.3.3) and checks that the two agree.
func Both32(b []byte, what string) (uint32, error) {
	le, be := binary.LittleEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
	if le != be {
		return 0, fmt.Errorf("%s: both-endian mismatch %d != %d", what, le, be)
	}
	return le, nil
}

// ReadDir parses the records of a directory extent, with their Rock Ridge
// entries (following continuation areas) when rockRidge is set.
func (im *Image) ReadDir(lba, size uint32, rockRidge bool) ([]Entry, error) {
	data, err := im.extent(lba, size)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	var out []Entry
	for off := 0; off < len(data); {
		l := int(data[off])
		if l == 0 {
			off = (off/BlockSize + 1) * BlockSize
			continue
		}
		if off%BlockSize+l > BlockSize || off+l > len(data) {
			return nil, fmt.Errorf("dir at %d: record at %d crosses a block boundary", lba, off)
		}
		if l%2 != 0 {
			return nil, fmt.Errorf("dir at %d: odd record length %d", lba, l)
		}
		r := data[off : off+l]
		fl := int(r[32])
		if l < 33+fl {
			return nil, fmt.Errorf("dir at %d: record at %d of %d bytes has a %d-byte identifier", lba, off, l, fl)
		}
		e := Entry{Flags: r[25], Date: append([]byte{}, r[18:25]...), Ident: append([]byte{}, r[33:33+fl]...)}
		if e.LBA, err = Both32(r[2:], "extent"); err != nil {
			return nil, err
		}
		if e.Size, err = Both32(r[10:], "size"); err != nil {
			return nil, err
		}
		if rockRidge {
			if err := im.ParseSUSP(r[min(l, 33+fl+(1-fl%2)):], &e); err != nil {
				return nil, err
			}
		}
		out = append(out, e)
		off += l
	}
	return out, nil
}

// ParseSUSP reads the System Use entries su into e, following CE
// continuation areas in the image.
func (im *Image) ParseSUSP(su []byte, e *Entry) error {
	var linkParts []string
	linkCont := false
	nameDone := false
	for {
		var ce []byte
		for len(su) >= 4 {
			sig, l := string(su[:2]), int(su[2])
			if l < 4 || l > len(su) {
				return fmt.Errorf("%q: bad SUSP entry %s length %d (have %d)", e.Ident, sig, l, len(su))
			}
			d := su[4:l]
			e.SUSPSigs = append(e.SUSPSigs, sig)
			short := func(n int) error {
				if len(d) < n {
					return fmt.Errorf("%q: SUSP entry %s of %d bytes", e.Ident, sig, l)
				}
				return nil
			}
			switch sig {
			case "SP":
				if err := short(2); err != nil {
					return err
				}
				if d[0] != 0xBE || d[1] != 0xEF {
					return fmt.Errorf("bad SP check bytes")
				}
				e.SP = true
			case "ER":
				if err := short(4); err != nil {
					return err
				}
				if err := short(4 + int(d[0])); err != nil {
					return err
				}
				e.ER = string(d[4 : 4+d[0]])
			case "CE":
				if err := short(24); err != nil {
					return err
				}
				ce = su[:l]
				e.CECount++
			case "PX":
				if err := short(32); err != nil {
					return err
				}
				var err error
				for _, f := range []struct {
					v    *uint32
					off  int
					what string
				}{{&e.Mode, 0, "PX mode"}, {&e.Nlink, 8, "PX nlink"}, {&e.UID, 16, "PX uid"}, {&e.GID, 24, "PX gid"}} {
					if *f.v, err = Both32(d[f.off:], f.what); err != nil {
						return err
					}
				}
				e.HasPX = true
			case "TF":
				e.TF = append([]byte{}, d...)
			case "NM":
				if err := short(1); err != nil {
					return err
				}
				if nameDone {
					return fmt.Errorf("%q: NM after a final NM", e.Ident)
				}
				e.Name += string(d[1:])
				nameDone = d[0]&1 == 0
			case "SL":
				if err := short(1); err != nil {
					return err
				}
				comps := d[1:]
				for len(comps) > 0 {
					if len(comps) < 2 || len(comps) < 2+int(comps[1]) {
						return fmt.Errorf("%q: truncated SL component", e.Ident)
					}
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
			return fmt.Errorf("%q: continuation area crosses a block (offset %d, length %d)", e.Ident, off, n)
		}
		b, err := im.extent(blk, BlockSize)
		if err != nil {
			return fmt.Errorf("%q: continuation area: %w", e.Ident, err)
		}
		su = b[off : off+n]
	}
	if linkParts != nil {
		s := strings.Join(linkParts, "/")
		if strings.HasPrefix(s, "\x00root") {
			s = "/" + strings.TrimPrefix(strings.TrimPrefix(s, "\x00root"), "/")
		}
		e.Link = s
	}
	return nil
}

// NormLink is what a symlink target reads back as from SL components:
// empty components ("a//b", a trailing "/") are not recorded.
func NormLink(target string) string {
	abs := strings.HasPrefix(target, "/")
	var parts []string
	for _, p := range strings.Split(target, "/") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	s := strings.Join(parts, "/")
	if abs {
		s = "/" + s
	}
	return s
}

// File is one path of the Rock Ridge tree: its record and, for a file, its
// data.
type File struct {
	Entry Entry
	Data  []byte
}

// WalkRockRidge returns every path below the root directory at rootLBA
// ("/" is the root's "." record), by Rock Ridge names, checking that every
// directory starts with "." and ".." and lists its entries in ECMA-119
// 9.3 order.
func (im *Image) WalkRockRidge(rootLBA, rootSize uint32) (map[string]File, error) {
	out := map[string]File{}
	var walk func(prefix string, lba, size uint32, depth int) error
	walk = func(prefix string, lba, size uint32, depth int) error {
		if depth > 1000 {
			return fmt.Errorf("%s: directories nested more than 1000 deep (a loop?)", prefix)
		}
		ents, err := im.ReadDir(lba, size, true)
		if err != nil {
			return fmt.Errorf("%s: %w", prefix, err)
		}
		if len(ents) < 2 || !bytes.Equal(ents[0].Ident, identDot) || !bytes.Equal(ents[1].Ident, identDotDot) {
			return fmt.Errorf("%s: directory does not start with . and ..", prefix)
		}
		if depth == 0 {
			out["/"] = File{Entry: ents[0]}
		}
		for i := 2; i < len(ents); i++ {
			e := ents[i]
			if i > 2 && !IdentLess(ents[i-1].Ident, e.Ident) {
				return fmt.Errorf("%s: %q sorts after %q", prefix, ents[i-1].Ident, e.Ident)
			}
			p := prefix + e.Name
			if _, dup := out[p]; dup || e.Name == "" {
				return fmt.Errorf("%s: Rock Ridge name %q is empty or not unique", prefix, e.Name)
			}
			if e.Flags&FlagDirectory != 0 {
				out[p] = File{Entry: e}
				if err := walk(p+"/", e.LBA, e.Size, depth+1); err != nil {
					return err
				}
				continue
			}
			data, err := im.extent(e.LBA, e.Size)
			if err != nil && !isSymlink(e) {
				return fmt.Errorf("%s: %w", p, err)
			}
			out[p] = File{Entry: e, Data: data}
		}
		return nil
	}
	return out, walk("/", rootLBA, rootSize, 0)
}

func isSymlink(e Entry) bool { return e.Mode&sIFMT == sIFLNK }

// IdentLess is ECMA-119 9.3 ordering of file identifiers.
func IdentLess(a, b []byte) bool {
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

// WalkJoliet returns every path of the Joliet tree, names decoded (";1"
// dropped), checking that none is longer than writers make them.
func (im *Image) WalkJoliet(rootLBA, rootSize uint32) (map[string]Entry, error) {
	out := map[string]Entry{}
	var walk func(prefix string, lba, size uint32, depth int) error
	walk = func(prefix string, lba, size uint32, depth int) error {
		if depth > 1000 {
			return fmt.Errorf("Joliet %s: directories nested more than 1000 deep (a loop?)", prefix)
		}
		ents, err := im.ReadDir(lba, size, false)
		if err != nil {
			return fmt.Errorf("Joliet %s: %w", prefix, err)
		}
		if len(ents) < 2 {
			return fmt.Errorf("Joliet %s: directory does not start with . and ..", prefix)
		}
		for _, e := range ents[2:] {
			u := make([]uint16, len(e.Ident)/2)
			for i := range u {
				u[i] = binary.BigEndian.Uint16(e.Ident[2*i:])
			}
			name := strings.TrimSuffix(string(utf16.Decode(u)), ";1")
			if len(u) > jolietNameMax+3 { // name, ".", ext, ";1"
				return fmt.Errorf("%s%s: Joliet name of %d characters", prefix, name, len(u))
			}
			out[prefix+name] = e
			if e.Flags&FlagDirectory != 0 {
				if err := walk(prefix+name+"/", e.LBA, e.Size, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return out, walk("/", rootLBA, rootSize, 0)
}

// RootOf returns the root directory's extent from a volume descriptor.
func RootOf(vd []byte) (lba, size uint32, err error) {
	r := vd[156:190]
	if r[0] != 34 || r[32] != 1 || r[33] != 0 {
		return 0, 0, fmt.Errorf("bad root directory record % x", r)
	}
	if lba, err = Both32(r[2:], "root extent"); err != nil {
		return 0, 0, err
	}
	size, err = Both32(r[10:], "root size")
	return lba, size, err
}

// PathEntry is a path table record.
type PathEntry struct {
	Ident  []byte // {0} for the root
	LBA    uint32
	Parent uint16 // number of the parent directory; the root's is 1
}

// PathTable parses the L (little) or M path table of a volume descriptor.
func (im *Image) PathTable(vd []byte, little bool) ([]PathEntry, error) {
	size, err := Both32(vd[132:], "path table size")
	if err != nil {
		return nil, err
	}
	var lba uint32
	var order binary.ByteOrder = binary.LittleEndian
	if little {
		lba = binary.LittleEndian.Uint32(vd[140:])
	} else {
		lba = binary.BigEndian.Uint32(vd[148:])
		order = binary.BigEndian
	}
	b, err := im.extent(lba, size)
	if err != nil {
		return nil, fmt.Errorf("path table: %w", err)
	}
	var out []PathEntry
	for len(b) > 0 {
		n := int(b[0])
		if len(b) < 8+n+n%2 {
			return nil, fmt.Errorf("path table: truncated record")
		}
		out = append(out, PathEntry{Ident: append([]byte{}, b[8:8+n]...), LBA: order.Uint32(b[2:]), Parent: order.Uint16(b[6:])})
		b = b[8+n+n%2:]
	}
	return out, nil
}

// CheckPathTables checks that a volume descriptor's L and M path tables
// agree, start with its root, list parents before children, and that
// every entry is a directory whose ".." is the entry's parent.
func (im *Image) CheckPathTables(vd []byte) error {
	l, err := im.PathTable(vd, true)
	if err != nil {
		return err
	}
	m, err := im.PathTable(vd, false)
	if err != nil {
		return err
	}
	if len(l) == 0 || len(l) != len(m) {
		return fmt.Errorf("path tables: %d L entries, %d M entries", len(l), len(m))
	}
	rootLBA, _, err := RootOf(vd)
	if err != nil {
		return err
	}
	var errs []string
	if l[0].LBA != rootLBA || l[0].Parent != 1 {
		errs = append(errs, fmt.Sprintf("path table root %+v, root at %d", l[0], rootLBA))
	}
	for i := range l {
		if !bytes.Equal(l[i].Ident, m[i].Ident) || l[i].LBA != m[i].LBA || l[i].Parent != m[i].Parent {
			errs = append(errs, fmt.Sprintf("path table entry %d: L %+v M %+v", i+1, l[i], m[i]))
		}
		if i > 0 && l[i].Parent < l[i-1].Parent {
			errs = append(errs, fmt.Sprintf("path table entry %d: parent %d after %d", i+1, l[i].Parent, l[i-1].Parent))
		}
		if l[i].Parent < 1 || int(l[i].Parent) > len(l) {
			errs = append(errs, fmt.Sprintf("path table entry %d: parent %d of %d entries", i+1, l[i].Parent, len(l)))
			continue
		}
		// Every entry's extent is a directory whose ".." is its parent.
		dir, err := im.ReadDir(l[i].LBA, BlockSize, false)
		if err != nil {
			return fmt.Errorf("path table entry %d: %w", i+1, err)
		}
		if len(dir) < 2 || dir[0].LBA != l[i].LBA || dir[1].LBA != l[l[i].Parent-1].LBA {
			errs = append(errs, fmt.Sprintf("path table entry %d (%q): directory at %d does not have . at %d and .. at its parent %d's %d",
				i+1, l[i].Ident, l[i].LBA, l[i].LBA, l[i].Parent, l[l[i].Parent-1].LBA))
		}
	}
	if errs != nil {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// DecodeDirDate decodes a 7-byte directory record date (ECMA-119 9.1.5),
// also the short form of Rock Ridge TF.
func DecodeDirDate(b []byte) time.Time {
	t := time.Date(1900+int(b[0]), time.Month(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]), 0, time.UTC)
	return t.Add(-time.Duration(int8(b[6])) * 15 * time.Minute)
}
