package fat

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// shortSpecial are the punctuation characters allowed in 8.3 names besides
// A-Z and 0-9 (fatgen103 "FAT Directory Structure", DIR_Name).
const shortSpecial = "!#$%&'()-@^_`{}~"

// lfnForbidden may appear in neither short nor long names.
const lfnForbidden = `"*/:<>?\|`

func isShortChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(shortSpecial, c) >= 0
}

// validateName rejects names no FAT driver can store or look up.
func validateName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid file name %q", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("file name %q is not valid UTF-8", name)
	case strings.HasSuffix(name, ".") || strings.HasSuffix(name, " "):
		// Windows and Linux strip trailing dots and spaces on lookup, so
		// such a name could never be opened as written.
		return fmt.Errorf("file name %q ends with a dot or a space", name)
	case len(utf16.Encode([]rune(name))) > maxLFNLen:
		return fmt.Errorf("file name %q is longer than %d UTF-16 units", name, maxLFNLen)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7F || strings.ContainsRune(lfnForbidden, r) {
			return fmt.Errorf("file name %q contains %q, which FAT does not allow", name, r)
		}
	}
	return nil
}

// exactShortName returns the 8.3 form of name when name already is a
// valid upper-case 8.3 name (BOOTX64.EFI, EFI, BOOT): it is then stored
// without a long name, exactly as mkfs/mcopy and firmware expect.
func exactShortName(name string) ([11]byte, bool) {
	base, ext, hasDot := strings.Cut(name, ".")
	if len(base) < 1 || len(base) > 8 || len(ext) > 3 || hasDot && ext == "" || strings.Contains(ext, ".") {
		return [11]byte{}, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' && !isShortChar(name[i]) {
			return [11]byte{}, false
		}
	}
	return pack(base, ext), true
}

func pack(base, ext string) [11]byte {
	var s [11]byte
	copy(s[:], fmt.Sprintf("%-8s%-3s", base, ext))
	return s
}

// shortNamer hands out the unique 8.3 names of one directory, following the
// Windows "basis name" algorithm: upper-case, drop spaces and extra dots,
// replace characters 8.3 cannot hold with '_', truncate to 8.3, and when
// anything was lost (or the name is taken) add the first free "~N" tail.
// Names are processed in sorted order, so the result is deterministic.
type shortNamer struct {
	used map[[11]byte]bool
	// next is the first "~N" worth trying per basis name: without it a
	// directory of thousands of similar names would retry ~1, ~2, ... for
	// each of them, quadratic in the directory size.
	next map[[11]byte]int
}

func newShortNamer() *shortNamer {
	return &shortNamer{used: map[[11]byte]bool{}, next: map[[11]byte]int{}}
}

// reserve claims the exact short names first, so that a generated ~N name
// can never take the name of a file that is literally called that.
func (s *shortNamer) reserve(short [11]byte) { s.used[short] = true }

// generate returns the short name for a name that is not an exact 8.3 name.
func (s *shortNamer) generate(name string) ([11]byte, error) {
	upper := strings.ToUpper(name)
	lossy := false
	trimmed := strings.TrimLeft(strings.ReplaceAll(upper, " ", ""), ".")
	if trimmed != upper {
		lossy = true
	}
	base, ext := trimmed, ""
	if i := strings.LastIndexByte(trimmed, '.'); i >= 0 {
		base, ext = trimmed[:i], trimmed[i+1:]
	}
	if strings.Contains(base, ".") {
		base = strings.ReplaceAll(base, ".", "")
		lossy = true
	}
	base, l1 := shortChars(base, 8)
	ext, l2 := shortChars(ext, 3)
	lossy = lossy || l1 || l2
	if base == "" {
		base, lossy = "_", true
	}

	basis := pack(base, ext)
	if !lossy && !s.used[basis] {
		s.used[basis] = true
		return basis, nil
	}
	for n := max(s.next[basis], 1); n <= 999999; n++ {
		tail := "~" + strconv.Itoa(n)
		cand := pack(base[:min(len(base), 8-len(tail))]+tail, ext)
		if !s.used[cand] {
			s.used[cand] = true
			s.next[basis] = n + 1
			return cand, nil
		}
	}
	return [11]byte{}, fmt.Errorf("no free short name for %q", name)
}

// shortChars maps s (already upper case) to 8.3 characters, at most n of
// them, and reports whether anything was replaced or cut.
func shortChars(s string, n int) (string, bool) {
	var b strings.Builder
	lossy := false
	for _, r := range s {
		c := byte('_')
		if r < utf8.RuneSelf && isShortChar(byte(r)) {
			c = byte(r)
		} else {
			lossy = true
		}
		if b.Len() == n {
			return b.String(), true
		}
		b.WriteByte(c)
	}
	return b.String(), lossy
}

// displayShort renders a packed short name as NAME.EXT.
func displayShort(s [11]byte) string {
	base := strings.TrimRight(string(s[:8]), " ")
	ext := strings.TrimRight(string(s[8:]), " ")
	if ext == "" {
		return base
	}
	return base + "." + ext
}
