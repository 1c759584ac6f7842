package iso9660

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestMatchesXorriso builds the same tree twice, with this writer and with
// the xorriso command line mkartifacts.sh used, and compares what xorriso
// reports about both: El Torito entries, system area (MBR and GPT), Rock
// Ridge, Joliet and ISO 9660 listings, the patched boot image and the MBR
// sector. Block addresses differ (the two lay data out in another order),
// everything else must not.
func TestMatchesXorriso(t *testing.T) {
	xorriso := need(t, "xorriso")
	need(t, "touch")
	tt := newTestTree(t)
	dir := filepath.Join(t.TempDir(), "tree")
	materialize(t, dir, tt)
	mbrPath := "/usr/lib/grub/i386-pc/boot_hybrid.img"
	mbr, err := os.ReadFile(mbrPath)
	if err != nil {
		mbrPath = filepath.Join(t.TempDir(), "boot_hybrid.img")
		mbr = fakeMBR()
		if err := os.WriteFile(mbrPath, mbr, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ref := filepath.Join(t.TempDir(), "xorriso.iso")
	cmd := exec.Command(xorriso, "-as", "mkisofs", "-iso-level", "3", "-full-iso9660-filenames", "-rational-rock", "-joliet",
		"-volid", "COS_LIVE", "-eltorito-boot", "boot/grub/eltorito.img", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
		"--grub2-boot-info", "--grub2-mbr", mbrPath, "-eltorito-alt-boot", "--efi-boot", "boot/uefi.img", "-efi-boot-part", "--efi-boot-image",
		"--protective-msdos-label", "-output", ref, dir)
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch.Unix()))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}

	root, err := FromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rational(root)
	img := hybridImage(tt)
	img.Root = root
	img.BIOSBoot.MBRCode = mbr
	mine := filepath.Join(t.TempDir(), "mine.iso")
	if err := WriteFile(mine, img); err != nil {
		t.Fatal(err)
	}

	report := func(p string) string {
		return run(t, xorriso, "-indev", p, "-report_el_torito", "plain", "-report_system_area", "plain")
	}
	lbaCols := regexp.MustCompile(`(?m)^((?:El Torito boot img|MBR partition)\s+:.*?)\s+\d+$`)
	keep := func(rep string, prefixes ...string) []string {
		var out []string
		for _, line := range strings.Split(lbaCols.ReplaceAllString(rep, "$1"), "\n") {
			for _, p := range prefixes {
				if strings.HasPrefix(line, p) {
					out = append(out, line)
				}
			}
		}
		return out
	}
	prefixes := []string{"Boot record", "Volume id", "El Torito cat path", "El Torito boot img", "El Torito img",
		"System area options", "System area summary", "MBR heads", "MBR secs", "GPT entry array", "GPT partition name",
		"GPT partname local", "GPT type GUID", "GPT partition flags", "GPT partition path", "MBR partition"}
	refRep, mineRep := report(ref), report(mine)
	if a, b := keep(refRep, prefixes...), keep(mineRep, prefixes...); !slices.Equal(a, b) {
		t.Errorf("xorriso reports differ:\n--- xorriso\n%s\n--- this writer\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	espSize := regexp.MustCompile(`GPT start and size :\s+2\s+\d+\s+(\d+)`)
	if a, b := espSize.FindStringSubmatch(refRep), espSize.FindStringSubmatch(mineRep); a == nil || b == nil || a[1] != b[1] {
		t.Errorf("ESP partition sizes differ: %v / %v", a, b)
	}

	// Listings of the Rock Ridge and Joliet trees, link counts aside
	// (xorriso records 1). The plain ISO 9660 names differ where names
	// collide or start with a dot (each tool has its own mangling), so
	// that tree is compared by its number of entries.
	nlink := regexp.MustCompile(`(?m)^(\S+)\s+\d+ `)
	for _, readFS := range []string{"any", "norock", "ecma119"} {
		list := func(p string) string {
			out := run(t, xorriso, "-read_fs", readFS, "-indev", p, "-find", "/", "-exec", "lsdl")
			var lines []string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, " '/") && !strings.HasPrefix(l, "Drive current") {
					lines = append(lines, nlink.ReplaceAllString(l, "$1 "))
				}
			}
			return strings.Join(lines, "\n")
		}
		a, b := list(ref), list(mine)
		if readFS == "ecma119" {
			if strings.Count(a, "\n") != strings.Count(b, "\n") || !strings.Contains(b, "'/A/B/C/BIG.BIN'") {
				t.Errorf("ISO 9660 listings: %d entries from xorriso, %d from this writer", strings.Count(a, "\n"), strings.Count(b, "\n"))
			}
			continue
		}
		if a != b {
			t.Errorf("-read_fs %s listings differ:\n%s", readFS, diffLines(a, b))
		}
	}

	// The boot image xorriso patched equals ours patched for its address.
	refISO, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	biosLBA := regexp.MustCompile(`El Torito boot img :\s+1\s+BIOS.*\s(\d+)\n`).FindStringSubmatch(refRep)
	if biosLBA == nil {
		t.Fatalf("no BIOS image in xorriso report")
	}
	var lba uint32
	fmt.Sscan(biosLBA[1], &lba)
	orig := tt.contents["/boot/grub/eltorito.img"]
	want := append([]byte{}, orig...)
	if err := patchBootImage(want, img.BIOSBoot, firstVDLBA, lba); err != nil {
		t.Fatal(err)
	}
	if got := refISO[int(lba)*BlockSize : int(lba)*BlockSize+len(orig)]; !bytes.Equal(got, want) {
		t.Errorf("xorriso's patched boot image differs from ours at the same address")
	}

	// The MBR sector for xorriso's image size and boot image address.
	l := &layout{img: img, gpt: true, totalBlocks: int64(len(refISO) / BlockSize), biosBoot: &node{extent: lba}}
	area, _ := l.systemArea()
	if !bytes.Equal(area[:512], refISO[:512]) {
		t.Errorf("MBR differs:\nxorriso % x\nours    % x", refISO[432:512], area[432:512])
	}
	// And the GPT geometry: header fields but GUIDs and CRCs.
	le := binary.LittleEndian
	for _, off := range []int{24, 32, 40, 48, 72, 80, 84} {
		if le.Uint32(area[512+off:]) != le.Uint32(refISO[512+off:]) {
			t.Errorf("GPT header field at %d: ours %d, xorriso %d", off, le.Uint32(area[512+off:]), le.Uint32(refISO[512+off:]))
		}
	}
}

// materialize writes the test tree to disk, times included, but for the
// 255-byte names, which xorriso reads but refuses to add (254 at most).
func materialize(t *testing.T, dir string, tt *testTree) {
	t.Helper()
	var touch []string
	for p, data := range tt.contents {
		if strings.Contains(p, longName[:200]) {
			continue
		}
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, fs.FileMode(tt.modes[p]&0o777)); err != nil {
			t.Fatal(err)
		}
		touch = append(touch, full)
	}
	for p, target := range tt.links {
		if strings.Contains(p, longName[:200]) {
			continue
		}
		if err := os.Symlink(target, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
		touch = append(touch, filepath.Join(dir, p))
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			touch = append(touch, p)
		}
		return err
	})
	slices.Sort(touch)
	slices.Reverse(touch) // children before their directory
	for _, p := range touch {
		run(t, "touch", "-h", "-d", "@"+fmt.Sprint(fileTime.Unix()), p)
	}
}

// rational applies what xorriso's -rational-rock does to attributes.
func rational(d *Dir) {
	fix := func(m *Meta, dir bool) {
		perm := m.Mode.Perm()
		mode := fs.FileMode(0o444)
		if perm&0o111 != 0 || dir {
			mode |= 0o111
		}
		m.Mode, m.UID, m.GID = mode, 0, 0
	}
	fix(&d.Meta, true)
	for _, n := range d.Entries {
		switch e := n.(type) {
		case *Dir:
			rational(e)
		case *File:
			fix(&e.Meta, false)
		case *Symlink:
			fix(&e.Meta, false)
		}
	}
}

// diffLines lists the lines only one side has ("-" xorriso, "+" ours).
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, x := range al {
		if !slices.Contains(bl, x) {
			out = append(out, "- "+x)
		}
	}
	for _, y := range bl {
		if !slices.Contains(al, y) {
			out = append(out, "+ "+y)
		}
	}
	if len(out) > 40 {
		out = append(out[:40], "...")
	}
	return strings.Join(out, "\n")
}
