// Package bytesize parses the sizes users write in specs and flags (16G,
// 512MiB, 1073741824).
package bytesize

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// sizeUnits are the accepted size suffixes, upper-cased. Single letters are
// binary, as in truncate(1) and qemu-img.
var sizeUnits = map[string]int64{
	"": 1, "B": 1,
	"K": 1 << 10, "KIB": 1 << 10,
	"M": 1 << 20, "MIB": 1 << 20,
	"G": 1 << 30, "GIB": 1 << 30,
	"T": 1 << 40, "TIB": 1 << 40,
}

var sizeRe = regexp.MustCompile(`^([0-9]+)\s*([A-Za-z]*)$`)

// Parse reads a size: a whole number of bytes, or a number with a binary
// unit. Decimal-looking units (GB) are refused as ambiguous.
func Parse(v string) (int64, error) {
	m := sizeRe.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size: want a whole number of bytes or with a unit (K, M, G, T, KiB, MiB, GiB, TiB), e.g. 16G", v)
	}
	unit := strings.ToUpper(m[2])
	mult, ok := sizeUnits[unit]
	if !ok {
		if slices.Contains([]string{"KB", "MB", "GB", "TB"}, unit) {
			return 0, fmt.Errorf("%q: %s is ambiguous (10^n or 2^n bytes?); write %s%s or %s%siB (binary) or a number of bytes", v, m[2], m[1], unit[:1], m[1], unit[:1])
		}
		return 0, fmt.Errorf("%q: unknown unit %q (valid: K, M, G, T, KiB, MiB, GiB, TiB, or none for bytes)", v, m[2])
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return n * mult, nil
}
