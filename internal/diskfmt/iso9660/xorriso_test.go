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

	"github.com/kairos-io/kairos/internal/diskfmt/iso9660/isotest"
	"github.com/kairos-io/kairos/internal/fstree"
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

	root, err := fstree.DirSource(dir)
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

	// El Torito, system area, Rock Ridge and Joliet listings.
	if err := isotest.CompareXorriso(mine, ref); err != nil {
		t.Error(err)
	}
	if plain := must(isotest.List(mine, "ecma119"))(t); !strings.Contains(plain, "'/A/B/C/BIG.BIN'") {
		t.Errorf("ISO 9660 listing lacks /A/B/C/BIG.BIN:\n%s", plain)
	}
	refRep := must(isotest.Report(ref))(t)

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
func rational(n *fstree.Node) {
	mode := fs.FileMode(0o444)
	if n.Mode.Perm()&0o111 != 0 || n.Mode.IsDir() {
		mode |= 0o111
	}
	n.Mode, n.UID, n.GID = n.Mode.Type()|mode, 0, 0
	for _, c := range n.Children {
		rational(c)
	}
}
