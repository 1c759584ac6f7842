package iso9660

import (
	"slices"
	"strconv"
	"unicode/utf16"
)

// Joliet (Microsoft, 1995) is a second directory tree, announced by a
// Supplementary Volume Descriptor with escape sequence "%/E" (voldesc.go),
// whose identifiers are UCS-2 big-endian: Windows, and readers without Rock
// Ridge, see long mixed-case names through it. It shares the file data of
// the ISO 9660 tree; only directories and path tables are its own. It has
// no System Use entries, so no permissions or symlinks: symlinks are left
// out of it, as libisofs does.

// buildJolietTree names, sorts and lays out the Joliet directories.
func (l *layout) buildJolietTree() error {
	var walk func(d *node)
	walk = func(d *node) {
		for _, c := range d.children {
			if !c.isLink {
				d.jolKids = append(d.jolKids, c)
			}
		}
		names := make([]string, len(d.jolKids))
		dirs := make([]bool, len(d.jolKids))
		for i, c := range d.jolKids {
			names[i], dirs[i] = c.name, c.dir
		}
		for i, n := range uniqueJolietNames(names, dirs) {
			d.jolKids[i].jolName = n
		}
		slices.SortFunc(d.jolKids, func(a, b *node) int {
			if a.jolName.less(b.jolName) {
				return -1
			}
			return 1
		})
		d.jolRecs = []record{
			{ident: identDot, target: d, joliet: true},
			{ident: identDotDot, target: d.parent, joliet: true},
		}
		for _, c := range d.jolKids {
			d.jolRecs = append(d.jolRecs, record{ident: c.jolName.ident(), target: c, joliet: true})
		}
		d.jolSize = dirSize(d.jolRecs)
		for _, c := range d.jolKids {
			if c.dir {
				walk(c)
			}
		}
	}
	walk(l.root)
	var err error
	l.jolietTree, err = pathTableOrder(l.root, func(n *node) []*node { return n.jolKids },
		func(n *node) []byte { return ucs2Units(n.jolName.units) })
	return err
}

// Joliet identifiers (Joliet specification 3.3): UCS-2 big-endian, at most
// 64 characters, without * / : ; ? \ and control characters. As libisofs
// counts them, a file's 64 are its name and extension without the '.'
// between them, and the version ";1" follows, as with mkisofs.
const jolietNameMax = 64

type jolietName struct {
	units []uint16 // without the version
	dir   bool
}

func jolietUnits(s string) []uint16 {
	var u []uint16
	for _, r := range s {
		switch {
		case r < 0x20, r == '*', r == '/', r == ':', r == ';', r == '?', r == '\\', r > 0xFFFF,
			r >= 0xD800 && r <= 0xDFFF:
			r = '_'
		}
		u = append(u, uint16(r))
	}
	return u
}

// splitExt splits a file name at its last '.', not a leading one.
func splitExt(u []uint16) (base, ext []uint16, ok bool) {
	for i := len(u) - 1; i > 0; i-- {
		if u[i] == '.' {
			return u[:i], u[i+1:], true
		}
	}
	return u, nil, false
}

// joinExt builds name.ext, shortening the name (and an extension longer
// than 8) to fit 64 characters plus the dot, with suffix after the name.
func joinExt(base, ext, suffix []uint16, hasExt bool) []uint16 {
	if len(base)+len(ext)+len(suffix) > jolietNameMax && len(ext) > isoExtKeep {
		ext = ext[:isoExtKeep]
	}
	keep := min(len(base), jolietNameMax-len(ext)-len(suffix))
	u := append(append([]uint16{}, base[:keep]...), suffix...)
	if hasExt {
		u = append(append(u, '.'), ext...)
	}
	return u
}

// ucs2 encodes s in UCS-2 big-endian (characters outside the BMP become '_').
func ucs2(s string) []byte {
	return ucs2Units(jolietUnitsLoose(s))
}

// jolietUnitsLoose is jolietUnits for descriptor text, where only
// characters UCS-2 cannot hold are replaced.
func jolietUnitsLoose(s string) []uint16 {
	var u []uint16
	for _, r := range s {
		if r > 0xFFFF || (r >= 0xD800 && r <= 0xDFFF) {
			r = '_'
		}
		u = append(u, uint16(r))
	}
	return u
}

func ucs2Units(u []uint16) []byte {
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c>>8), byte(c)
	}
	return b
}

func (n jolietName) ident() []byte {
	u := n.units
	if !n.dir {
		u = append(append([]uint16{}, u...), ';', '1')
	}
	return ucs2Units(u)
}

func (n jolietName) key() string { return string(utf16.Decode(n.units)) }

// less orders by UCS-2 code units, the Joliet reading of ECMA-119 9.3.
func (n jolietName) less(o jolietName) bool {
	for i := range min(len(n.units), len(o.units)) {
		if n.units[i] != o.units[i] {
			return n.units[i] < o.units[i]
		}
	}
	return len(n.units) < len(o.units)
}

// wantJolietName cuts a long name to 64 characters, keeping the extension
// so that the file type stays recognisable.
func wantJolietName(name string, dir bool) jolietName {
	u := jolietUnits(name)
	if dir {
		return jolietName{units: u[:min(len(u), jolietNameMax)], dir: true}
	}
	base, ext, ok := splitExt(u)
	return jolietName{units: joinExt(base, ext, nil, ok)}
}

// uniqueJolietNames is uniqueISONames for the Joliet tree: a counter after
// the name part resolves collisions.
func uniqueJolietNames(names []string, dirs []bool) []jolietName {
	out := make([]jolietName, len(names))
	taken := map[string]bool{}
	for i, name := range names {
		n := wantJolietName(name, dirs[i])
		for c := 1; taken[n.key()]; c++ {
			s := jolietUnits(strconv.Itoa(c))
			if n.dir {
				u := jolietUnits(name)
				u = u[:min(len(u), jolietNameMax-len(s))]
				n = jolietName{units: append(u, s...), dir: true}
				continue
			}
			base, ext, ok := splitExt(jolietUnits(name))
			n = jolietName{units: joinExt(base, ext, s, ok)}
		}
		taken[n.key()] = true
		out[i] = n
	}
	return out
}
