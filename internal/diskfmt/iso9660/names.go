package iso9660

import (
	"strconv"
	"strings"
)

// Identifiers of the plain ISO 9660 tree (ECMA-119 7.5, 7.6) at interchange
// level 2/3: d-characters only (A-Z, 0-9, _), file identifiers "NAME.EXT;1"
// with NAME and EXT together at most 30 characters, directory identifiers
// at most 31. Rock Ridge NM carries the real name; this tree is what a
// reader without Rock Ridge or Joliet sees, so the mapping only has to be
// valid, unique within its directory and stable.
const (
	isoFileNameMax = 30
	isoDirNameMax  = 31
	isoExtKeep     = 8 // extension kept when a name must be shortened
)

// dChars maps name to d-characters: letters upper-cased, anything else
// that is not a d-character (including every non-ASCII rune) becomes '_'.
func dChars(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// isoName is an identifier split in the parts ECMA-119 9.3 sorts by.
type isoName struct {
	base, ext string
	dir       bool
}

func (n isoName) key() string { return n.base + "." + n.ext }

// ident is the recorded File Identifier: directories have no separators,
// files always have the '.' (even with an empty extension) and version 1.
func (n isoName) ident() []byte {
	if n.dir {
		return []byte(n.base)
	}
	return []byte(n.base + "." + n.ext + ";1")
}

// less orders identifiers as ECMA-119 9.3 does: by name, then extension,
// each padded with spaces, which sort below every d-character, so plain
// string comparison gives the same order.
func (n isoName) less(o isoName) bool {
	if n.base != o.base {
		return n.base < o.base
	}
	return n.ext < o.ext
}

// wantISOName is the identifier a name maps to before uniqueness.
func wantISOName(name string, dir bool) isoName {
	if dir {
		b := dChars(name)
		return isoName{base: b[:min(len(b), isoDirNameMax)], dir: true}
	}
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		base, ext = name[:i], name[i+1:]
	}
	base, ext = dChars(base), dChars(ext)
	if len(base)+len(ext) > isoFileNameMax {
		ext = ext[:min(len(ext), isoExtKeep)]
		base = base[:min(len(base), isoFileNameMax-len(ext))]
	}
	return isoName{base: base, ext: ext}
}

// uniqueISONames maps the names of one directory (in tree order, which
// decides who keeps the plain mapping) to identifiers unique in it:
// collisions get a decimal counter at the end of the name part.
func uniqueISONames(names []string, dirs []bool) []isoName {
	out := make([]isoName, len(names))
	taken := map[string]bool{}
	for i, name := range names {
		n := wantISOName(name, dirs[i])
		if taken[n.key()] || n.base == "" {
			// Room for the counter: at least 22 characters of name part.
			n.ext = n.ext[:min(len(n.ext), isoExtKeep)]
			max := isoFileNameMax - len(n.ext)
			if n.dir {
				max = isoDirNameMax
			}
			want := n
			for c := 1; taken[n.key()] || n.base == ""; c++ {
				s := strconv.Itoa(c)
				n.base = want.base[:min(len(want.base), max-len(s))] + s
			}
		}
		taken[n.key()] = true
		out[i] = n
	}
	return out
}
