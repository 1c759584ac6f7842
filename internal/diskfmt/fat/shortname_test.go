package fat

import "testing"

func TestShortNames(t *testing.T) {
	// Names of one directory, in the order Write processes them (sorted).
	for _, tc := range []struct {
		names []string
		want  []string
		lfn   []bool
	}{
		{[]string{"BOOTX64.EFI", "EFI", "BOOT", "A1$~B.{X}"}, []string{"BOOTX64.EFI", "EFI", "BOOT", "A1$~B.{X}"}, []bool{false, false, false, false}},
		{[]string{"grub.cfg", "Boot", "x.Y"}, []string{"GRUB.CFG", "BOOT", "X.Y"}, []bool{true, true, true}},
		{[]string{"Long File Name One.txt", "Long File Name Two.txt", "LONGFI~1.TXT"},
			[]string{"LONGFI~2.TXT", "LONGFI~3.TXT", "LONGFI~1.TXT"}, []bool{true, true, false}},
		{[]string{".hidden", "a.b.c.tar.gz", "name with spaces", "x+y=z[1]", "très.long"},
			[]string{"HIDDEN~1", "ABCTAR~1.GZ", "NAMEWI~1", "X_Y_Z_~1", "TR_S~1.LON"}, []bool{true, true, true, true, true}},
		{[]string{"exactly8.ext", "nine_char.e", "README.markdown"},
			[]string{"EXACTLY8.EXT", "NINE_C~1.E", "README~1.MAR"}, []bool{true, true, true}},
	} {
		n := newShortNamer()
		shorts := make([][11]byte, len(tc.names))
		exact := make([]bool, len(tc.names))
		for i, name := range tc.names {
			if shorts[i], exact[i] = exactShortName(name); exact[i] {
				n.reserve(shorts[i])
			}
		}
		for i, name := range tc.names {
			if !exact[i] {
				var err error
				if shorts[i], err = n.generate(name); err != nil {
					t.Fatal(err)
				}
			}
			if got := displayShort(shorts[i]); got != tc.want[i] || exact[i] == tc.lfn[i] {
				t.Errorf("%q: short name %s (long name needed: %v), want %s (%v)", name, got, !exact[i], tc.want[i], tc.lfn[i])
			}
		}
	}
}

func TestManyCollisions(t *testing.T) {
	n := newShortNamer()
	seen := map[[11]byte]bool{}
	for i := range 20000 {
		s, err := n.generate("a very long colliding name " + string(rune('a'+i%26)) + ".conf")
		if err != nil {
			t.Fatal(err)
		}
		if seen[s] {
			t.Fatalf("duplicate short name %s", displayShort(s))
		}
		seen[s] = true
	}
	for s := range seen {
		if d := displayShort(s); len(d) > 12 {
			t.Errorf("short name %s is longer than 8.3", d)
		}
	}
}

func TestLFNEntries(t *testing.T) {
	short := pack("LONGFI~1", "TXT")
	// Reference computed independently (Python, 8-bit rotate right + add).
	if sum := lfnChecksum(short); sum != 0xD4 {
		t.Errorf("checksum of LONGFI~1TXT = %#x, want 0xd4", sum)
	}
	entries := lfnEntries("Long File Name One.txt", short)
	if len(entries) != 2 {
		t.Fatalf("%d entries, want 2", len(entries))
	}
	if entries[0][0] != 0x42 || entries[1][0] != 0x01 {
		t.Errorf("sequence bytes %#x %#x, want 0x42 0x01", entries[0][0], entries[1][0])
	}
	sum := lfnChecksum(short)
	for _, e := range entries {
		if e[11] != attrLongName || e[13] != sum || e[26] != 0 || e[27] != 0 {
			t.Errorf("entry % x: bad attribute, checksum or cluster", e)
		}
	}
	// Part 2 holds "xt" (units 13..21 are "ne.txt"...): 22 units in all, so
	// the terminator is unit 22 (index 9 of part 2) and 0xFFFF follows.
	last := entries[0]
	if last[14+2*(9-5)] != 0 || last[15+2*(9-5)] != 0 || last[14+2*(10-5)] != 0xFF || last[28] != 0xFF {
		t.Errorf("terminator or padding wrong: % x", last)
	}
}
