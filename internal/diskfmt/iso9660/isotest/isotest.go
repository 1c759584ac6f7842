// Package isotest judges ISO 9660 images, as go-containerregistry's
// validate judges images: Verify reads an image with this package's own
// reader (written from ECMA-119, SUSP/Rock Ridge and Joliet, sharing no
// code with the writer) and with xorriso (libisofs), and checks that both
// see exactly the tree written. The reader (Image, Entry, WalkRockRidge,
// WalkJoliet, PathTable...) and the xorriso helpers (Report, List,
// Extract, CompareXorriso) are exported for checks of their own: the
// writer's tests and those of the packages writing images use them.
package isotest

import (
	"cmp"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-io/kairos/internal/fstree"
)

// Options tune Check and Verify.
type Options struct {
	// Extra lists paths the writer adds to the tree besides want's, such
	// as the El Torito boot catalog ("/boot.catalog"): they must be in
	// the image and are otherwise not compared.
	Extra []string
	// Patched lists regular files whose content the writer changes, such
	// as a BIOS boot image with a boot info table: everything but their
	// content is compared.
	Patched []string
}

// Verify checks the image file img with Check, then has xorriso read it:
// its El Torito and system area report must come without complaint, and
// what it extracts (-osirrox) must be want, as far as ISO 9660 keeps it
// (see Check), symlinks' own times aside (xorriso does not set them) and
// owners too when not run as root.
func Verify(img string, want *fstree.Node, o Options) error {
	im, err := Load(img)
	if err != nil {
		return err
	}
	if err := Check(im, want, o); err != nil {
		return fmt.Errorf("%s: %w", img, err)
	}
	if _, err := Report(img); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "isotest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "x")
	if err := Extract(img, dir); err != nil {
		return err
	}
	got, err := fstree.DirSource(dir)
	if err != nil {
		return err
	}
	if err := adjust(got, want, o); err != nil {
		return fmt.Errorf("xorriso extraction of %s: %w", img, err)
	}
	diff := fstree.DiffOptions{IgnoreXattrs: true, IgnoreHardlinks: true, IgnoreSymlinkTimes: true, IgnoreOwners: os.Geteuid() != 0}
	if err := fstree.Compare(Stored(want), got, diff); err != nil {
		return fmt.Errorf("xorriso extraction of %s differs from the tree written:\n%w", img, err)
	}
	return nil
}

// Check reads im with this package's reader and checks its structures
// against want: the volume descriptors, both path tables of each tree,
// the Rock Ridge tree (every directory starting with "." and "..",
// entries in ECMA-119 order, and every entry's name, type, permissions,
// owner, modification time, size, content and symlink target equal to
// Stored(want)), and, with a Joliet descriptor, a Joliet tree of as many
// entries as the Rock Ridge tree without its symlinks, whose files are
// the Rock Ridge tree's files (same extents).
func Check(im *Image, want *fstree.Node, o Options) error {
	vds, err := im.Descriptors()
	if err != nil {
		return err
	}
	pvd, svd := vds[VDPrimary], vds[VDSupplementary]
	if pvd == nil {
		return fmt.Errorf("no primary volume descriptor")
	}
	if err := im.CheckPathTables(pvd); err != nil {
		return fmt.Errorf("ISO 9660 %w", err)
	}
	lba, size, err := RootOf(pvd)
	if err != nil {
		return err
	}
	files, err := im.WalkRockRidge(lba, size)
	if err != nil {
		return err
	}
	got, err := TreeOf(files)
	if err != nil {
		return err
	}
	if svd != nil {
		if err := checkJoliet(im, svd, files); err != nil {
			return err
		}
	}
	if err := adjust(got, want, o); err != nil {
		return err
	}
	if err := fstree.Compare(Stored(want), got, fstree.DiffOptions{IgnoreXattrs: true, IgnoreHardlinks: true}); err != nil {
		return fmt.Errorf("the Rock Ridge tree differs from the tree written:\n%w", err)
	}
	return nil
}

// checkJoliet compares the Joliet tree with the Rock Ridge one.
func checkJoliet(im *Image, svd []byte, rr map[string]File) error {
	if err := im.CheckPathTables(svd); err != nil {
		return fmt.Errorf("Joliet %w", err)
	}
	lba, size, err := RootOf(svd)
	if err != nil {
		return fmt.Errorf("Joliet: %w", err)
	}
	jol, err := im.WalkJoliet(lba, size)
	if err != nil {
		return err
	}
	type extent struct{ lba, size uint32 }
	var want, got []extent
	dirs := 0
	for p, f := range rr {
		switch {
		case p == "/" || isSymlink(f.Entry):
		case f.Entry.Flags&FlagDirectory != 0:
			dirs++
		default:
			want = append(want, extent{f.Entry.LBA, f.Entry.Size})
		}
	}
	for _, e := range jol {
		if e.Flags&FlagDirectory != 0 {
			dirs--
		} else {
			got = append(got, extent{e.LBA, e.Size})
		}
	}
	byExtent := func(a, b extent) int { return cmp.Or(cmp.Compare(a.lba, b.lba), cmp.Compare(a.size, b.size)) }
	slices.SortFunc(want, byExtent)
	slices.SortFunc(got, byExtent)
	if dirs != 0 || !slices.Equal(want, got) {
		return fmt.Errorf("the Joliet tree (%d entries) does not hold the Rock Ridge tree's directories and files (%d files)", len(jol), len(want))
	}
	return nil
}

// Stored is want as an ISO 9660 image with Rock Ridge keeps it: times
// clamped to the 7-byte dates' 1900-2155, symlink targets without empty
// components (NormLink). The tree is copied; contents are shared.
// Hardlinks (copies in the image) and xattrs (not written) are left to
// the comparison's options.
func Stored(want *fstree.Node) *fstree.Node {
	n := *want
	n.ModTime = min(max(n.ModTime, minDate), maxDate)
	if n.Mode.Type() == fs.ModeSymlink {
		n.Target = NormLink(n.Target)
	}
	n.Children = nil
	for _, c := range want.Children {
		n.Children = append(n.Children, Stored(c))
	}
	return &n
}

var (
	minDate = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxDate = time.Date(2155, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
)

// adjust applies o to got, a tree read back: Extra paths removed, Patched
// files given want's content.
func adjust(got, want *fstree.Node, o Options) error {
	for _, p := range o.Extra {
		parent, err := fstree.Lookup(got, path.Dir(path.Clean("/"+p)))
		if err != nil {
			return fmt.Errorf("extra %s: %w", p, err)
		}
		name := path.Base(p)
		i := slices.IndexFunc(parent.Children, func(c *fstree.Node) bool { return c.Name == name })
		if i < 0 {
			return fmt.Errorf("%s is not in the image", p)
		}
		parent.Children = slices.Delete(parent.Children, i, i+1)
	}
	for _, p := range o.Patched {
		g, err := fstree.Lookup(got, p)
		if err != nil {
			return fmt.Errorf("patched file: %w", err)
		}
		w, err := fstree.Lookup(want, p)
		if err != nil {
			return fmt.Errorf("patched file: %w", err)
		}
		g.Open = w.Open
	}
	return nil
}

// Tree reads the image's Rock Ridge tree (the primary volume descriptor's).
func (im *Image) Tree() (*fstree.Node, error) {
	vds, err := im.Descriptors()
	if err != nil {
		return nil, err
	}
	if vds[VDPrimary] == nil {
		return nil, fmt.Errorf("no primary volume descriptor")
	}
	lba, size, err := RootOf(vds[VDPrimary])
	if err != nil {
		return nil, err
	}
	files, err := im.WalkRockRidge(lba, size)
	if err != nil {
		return nil, err
	}
	return TreeOf(files)
}

// TreeOf makes a tree of what WalkRockRidge returns: type and
// permissions and owner from PX, modification time from TF (the record
// date without one), content, SL target.
func TreeOf(files map[string]File) (*fstree.Node, error) {
	paths := slices.Sorted(func(yield func(string) bool) {
		for p := range files {
			if !yield(p) {
				return
			}
		}
	})
	nodes := map[string]*fstree.Node{}
	for _, p := range paths { // parents sort before their entries
		n, err := nodeOf(files[p])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		nodes[p] = n
		if p == "/" {
			continue
		}
		parent := nodes[path.Dir(p)]
		if parent == nil {
			return nil, fmt.Errorf("%s: no parent directory", p)
		}
		n.Name = path.Base(p)
		parent.Children = append(parent.Children, n)
	}
	if nodes["/"] == nil {
		return nil, fmt.Errorf("no root directory")
	}
	return nodes["/"], nil
}

// st_mode type bits of PX.
const (
	sIFMT  = 0o170000
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
)

func nodeOf(f File) (*fstree.Node, error) {
	e := f.Entry
	if !e.HasPX {
		return nil, fmt.Errorf("no Rock Ridge PX entry")
	}
	mode := fs.FileMode(e.Mode & 0o777)
	for bit, m := range map[uint32]fs.FileMode{0o4000: fs.ModeSetuid, 0o2000: fs.ModeSetgid, 0o1000: fs.ModeSticky} {
		if e.Mode&bit != 0 {
			mode |= m
		}
	}
	dir := e.Flags&FlagDirectory != 0
	switch e.Mode & sIFMT {
	case sIFDIR:
		mode |= fs.ModeDir
	case sIFREG:
	case sIFLNK:
		mode |= fs.ModeSymlink
	default:
		return nil, fmt.Errorf("PX mode %o: not a directory, regular file or symlink", e.Mode)
	}
	if dir != mode.IsDir() {
		return nil, fmt.Errorf("PX mode %o, directory flag %v", e.Mode, dir)
	}
	mtime, err := modTime(e)
	if err != nil {
		return nil, err
	}
	n := &fstree.Node{Mode: mode, UID: e.UID, GID: e.GID, ModTime: mtime}
	switch mode.Type() {
	case 0:
		n.Size, n.Open = int64(len(f.Data)), fstree.BytesOpener(f.Data)
	case fs.ModeSymlink:
		n.Target = e.Link
	}
	return n, nil
}

// modTime is the modification time of TF (RRIP 4.1.6), or the record date.
func modTime(e Entry) (int64, error) {
	if len(e.TF) == 0 || e.TF[0]&0x02 == 0 {
		return DecodeDirDate(e.Date).Unix(), nil
	}
	size, off := 7, 1
	if e.TF[0]&0x80 != 0 {
		size = 17
	}
	if e.TF[0]&0x01 != 0 { // creation time first
		off += size
	}
	if len(e.TF) < off+size {
		return 0, fmt.Errorf("TF entry of %d bytes", len(e.TF))
	}
	b := e.TF[off : off+size]
	if size == 7 {
		return DecodeDirDate(b).Unix(), nil
	}
	t, err := time.Parse("20060102150405", string(b[:14]))
	if err != nil {
		return 0, fmt.Errorf("TF long-form date %q: %w", b[:16], err)
	}
	return t.Add(-time.Duration(int8(b[16])) * 15 * time.Minute).Unix(), nil
}

// ---- xorriso (libisofs), the reference reader. ----

// run runs a reference tool and returns its combined output.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Report is xorriso's El Torito and system area report of img
// (-report_el_torito plain -report_system_area plain). An image xorriso
// cannot load, or complains about (FAILURE, SORRY), is an error.
func Report(img string) (string, error) {
	out, err := run("xorriso", "-indev", img, "-report_el_torito", "plain", "-report_system_area", "plain")
	if err == nil && (strings.Contains(out, "FAILURE") || strings.Contains(out, "SORRY")) {
		err = fmt.Errorf("xorriso complained about %s:\n%s", img, out)
	}
	return out, err
}

// List is xorriso's ls -ld style listing of every entry of img as read
// with -read_fs readFS: "any" (Rock Ridge), "norock" (Joliet), "ecma119"
// (plain ISO 9660 names).
func List(img, readFS string) (string, error) {
	return run("xorriso", "-read_fs", readFS, "-indev", img, "-find", "/", "-exec", "lsdl")
}

// Extract has xorriso extract the whole tree of img to dir (-osirrox on),
// with permissions, times and, as root, owners.
func Extract(img, dir string) error {
	_, err := run("xorriso", "-osirrox", "on", "-indev", img, "-extract", "/", dir)
	return err
}

// CompareXorriso compares what xorriso reports about img and ref, an image
// of the same tree made by xorriso itself: El Torito entries and system
// area (MBR, GPT partitions: names, types, flags, paths and the second
// partition's size; not block addresses, as the two lay data out in
// another order), the Rock Ridge and Joliet listings (link counts aside:
// xorriso records 1) and the number of plain ISO 9660 entries (their
// names differ where names collide or start with a dot: each tool has
// its own mangling). Both must have a GPT partition 2 (an EFI System
// Partition).
func CompareXorriso(img, ref string) error {
	var errs []string
	refRep, err := Report(ref)
	if err != nil {
		return err
	}
	rep, err := Report(img)
	if err != nil {
		return err
	}
	lbaCols := regexp.MustCompile(`(?m)^((?:El Torito boot img|MBR partition)\s+:.*?)\s+\d+$`)
	prefixes := []string{"Boot record", "Volume id", "El Torito cat path", "El Torito boot img", "El Torito img",
		"System area options", "System area summary", "MBR heads", "MBR secs", "GPT entry array", "GPT partition name",
		"GPT partname local", "GPT type GUID", "GPT partition flags", "GPT partition path", "MBR partition"}
	keep := func(rep string) []string {
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
	if a, b := keep(refRep), keep(rep); !slices.Equal(a, b) {
		errs = append(errs, fmt.Sprintf("xorriso reports differ:\n--- xorriso\n%s\n--- %s\n%s", strings.Join(a, "\n"), img, strings.Join(b, "\n")))
	}
	espSize := regexp.MustCompile(`GPT start and size :\s+2\s+\d+\s+(\d+)`)
	if a, b := espSize.FindStringSubmatch(refRep), espSize.FindStringSubmatch(rep); a == nil || b == nil || a[1] != b[1] {
		errs = append(errs, fmt.Sprintf("ESP partition sizes differ: %v / %v", a, b))
	}

	nlink := regexp.MustCompile(`(?m)^(\S+)\s+\d+ `)
	for _, readFS := range []string{"any", "norock", "ecma119"} {
		list := func(p string) (string, error) {
			out, err := List(p, readFS)
			var lines []string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, " '/") && !strings.HasPrefix(l, "Drive current") {
					lines = append(lines, nlink.ReplaceAllString(l, "$1 "))
				}
			}
			return strings.Join(lines, "\n"), err
		}
		a, err := list(ref)
		if err != nil {
			return err
		}
		b, err := list(img)
		if err != nil {
			return err
		}
		if readFS == "ecma119" {
			if strings.Count(a, "\n") != strings.Count(b, "\n") {
				errs = append(errs, fmt.Sprintf("ISO 9660 listings: %d entries from xorriso, %d in %s", strings.Count(a, "\n"), strings.Count(b, "\n"), img))
			}
			continue
		}
		if a != b {
			errs = append(errs, fmt.Sprintf("-read_fs %s listings differ:\n%s", readFS, diffLines(a, b)))
		}
	}
	if errs != nil {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// diffLines lists the lines only one side has ("-" a, "+" b).
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
		out = append(out[:40], "... "+strconv.Itoa(len(out)-40)+" more")
	}
	return strings.Join(out, "\n")
}
