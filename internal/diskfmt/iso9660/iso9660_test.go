package iso9660

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
	"github.com/kairos-io/kairos/internal/diskfmt/iso9660/isotest"
	"github.com/kairos-io/kairos/internal/fstree"
)

var (
	epoch    = time.Unix(1700000000, 0).UTC() // SOURCE_DATE_EPOCH of the tests
	fileTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	longName = strings.Repeat("L", 200) + "_Mixed_Case_Name_that_goes_up_to_255_bytes_of_NAME_MAX"
)

// pseudoRandom returns n deterministic bytes.
func pseudoRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// fakeGRUBImage stands in for GRUB's eltorito.img: big enough for both the
// boot info table and the GRUB 2 boot info, size not a multiple of 4.
func fakeGRUBImage() []byte { return pseudoRandom(1, 30001) }

// fakeMBR stands in for boot_hybrid.img.
func fakeMBR() []byte {
	b := pseudoRandom(2, 512)
	b[510], b[511] = 0x55, 0xAA
	return b
}

// testTree is the tree of the tests and the content every file must have
// once read back (the boot image is checked separately: it gets patched).
type testTree struct {
	root     *fstree.Node
	contents map[string][]byte
	links    map[string]string
	modes    map[string]uint32 // expected PX mode
}

func newTestTree(t *testing.T) *testTree {
	t.Helper()
	ft := fileTime.Unix()
	tt := &testTree{
		root:     fstree.Dir(0o755, ft),
		contents: map[string][]byte{},
		links:    map[string]string{},
		modes:    map[string]uint32{"/": sIFDIR | 0o755},
	}
	// file adds data at p with m's mode, owner and time.
	file := func(p string, data []byte, m fstree.Node) {
		t.Helper()
		m.Size, m.Open = int64(len(data)), fstree.BytesOpener(data)
		if err := tt.root.Add(p, &m, 0o755, ft); err != nil {
			t.Fatal(err)
		}
		tt.contents["/"+p] = data
		tt.modes["/"+p] = posixMode(m.Mode, sIFREG)
	}
	link := func(p, target string) {
		t.Helper()
		if err := tt.root.Add(p, &fstree.Node{Mode: fs.ModeSymlink | 0o777, ModTime: ft, Target: target}, 0o755, ft); err != nil {
			t.Fatal(err)
		}
		tt.links["/"+p] = target
		tt.modes["/"+p] = sIFLNK | 0o777
	}
	ro := fstree.Node{Mode: 0o644, ModTime: ft}
	file("boot/grub/eltorito.img", fakeGRUBImage(), ro)
	file("boot/grub/grub.cfg", []byte("set timeout=5\n"), ro)
	file("boot/uefi.img", pseudoRandom(3, 1<<20+100), ro) // not a multiple of 512
	file("boot/kernel", pseudoRandom(4, 8000), fstree.Node{Mode: 0o755, ModTime: ft})
	file("EFI/BOOT/grub.cfg", []byte("search --label COS_LIVE\n"), ro)
	file("a/b/c/big.bin", pseudoRandom(5, 3<<20+7), ro)
	file("a/This_is_a_Very_Long_File_Name_with_MixedCase_that_exceeds_sixty-four_characters.txt", []byte("long\n"), ro)
	file("a/MixedCase.TXT", []byte("upper\n"), ro)
	file("a/mixedcase.txt", []byte("lower\n"), ro)
	file("a/"+longName[:255-len(".longext")]+".longext", []byte("255\n"), ro)
	file("a/ünïcødé-名前.txt", []byte("utf8\n"), ro)
	file("a/.hidden", []byte("dot\n"), ro)
	file("empty", nil, fstree.Node{Mode: 0o600, ModTime: ft})
	file("suid", []byte("#!/bin/sh\n"), fstree.Node{Mode: 0o755 | fs.ModeSetuid, UID: 1000, GID: 100, ModTime: ft})
	// Entries keep their own time (fstree has no "zero means the image's"):
	// this one has the image time, which no other entry has.
	file("zero-time", []byte("epoch\n"), fstree.Node{Mode: 0o644, ModTime: epoch.Unix()})
	file("a/deep/1/2/3/4/5/6/7/8/9/leaf", []byte("deep\n"), ro)
	for i := range 120 { // a directory of several blocks
		file(fmt.Sprintf("many/file-with-a-rather-long-name-%03d", i), []byte(strconv.Itoa(i)), ro)
	}
	link("a/link", "../boot/grub/grub.cfg")
	link("a/abs", "/boot/kernel")
	link("a/dots", "./../a/./b")
	// 1023 bytes, the longest libisofs reads back; with the 255-byte name
	// next to it, its record needs a continuation area.
	link("a/"+longName, strings.Repeat("component/", 62)+strings.Repeat("z", 403))
	for p := range tt.contents {
		for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
			tt.modes[d] = sIFDIR | 0o755
		}
	}
	return tt
}

func hybridImage(tt *testTree) *Image {
	return &Image{
		VolumeID:    "COS_LIVE",
		ModTime:     epoch,
		Root:        tt.root,
		Joliet:      true,
		CatalogPath: "boot.catalog",
		BIOSBoot: &BIOSBoot{
			Path:          "boot/grub/eltorito.img",
			BootInfoTable: true,
			GRUB2BootInfo: true,
			MBRCode:       fakeMBR(),
		},
		EFIBoot: &EFIBoot{Path: "boot/uefi.img", Partition: true},
	}
}

func writeTemp(t *testing.T, img *Image, name string) (string, []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := WriteFile(p, img); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	size, err := Size(img)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size {
		t.Fatalf("wrote %d bytes, Size says %d", len(b), size)
	}
	return p, b
}

// TestHybridImage writes the live-ISO shape (BIOS + UEFI El Torito, ESP in
// the tree exposed as GPT partition, GRUB hybrid MBR, Joliet) and reads
// every structure back with the test reader.
func TestHybridImage(t *testing.T) {
	tt := newTestTree(t)
	img := hybridImage(tt)
	_, b := writeTemp(t, img, "hybrid.iso")
	im := isotest.New(b)

	vds := must(im.Descriptors())(t)
	pvd, svd, br := vds[vdPrimary], vds[vdSupplementary], vds[vdBoot]
	if pvd == nil || svd == nil || br == nil {
		t.Fatalf("missing descriptors: have types %v", slices.Collect(maps.Keys(vds)))
	}
	if got := strings.TrimRight(string(pvd[40:72]), " "); got != "COS_LIVE" {
		t.Errorf("volume id %q", got)
	}
	if string(svd[88:91]) != "%/E" {
		t.Errorf("SVD escape sequences % x, want %%/E", svd[88:91])
	}
	if got := string(pvd[813:830]); got != "2023111422132000\x00" {
		t.Errorf("creation date %q", got)
	}
	volBlocks := must(isotest.Both32(pvd[80:], "volume space size"))(t)
	if int64(volBlocks)*BlockSize != int64(len(b)) {
		t.Errorf("volume space size %d blocks, image %d bytes", volBlocks, len(b))
	}

	// Both path tables, the Rock Ridge tree (every name, mode, owner,
	// time, content and target) and the Joliet one.
	if err := isotest.Check(im, tt.root, isotest.Options{Extra: []string{"/boot.catalog"}, Patched: []string{"/boot/grub/eltorito.img"}}); err != nil {
		t.Error(err)
	}
	files := must(im.WalkRockRidge(rootOf(t, pvd)))(t)
	root := files["/"].Entry
	if !root.SP || root.ER != "RRIP_1991A" || root.SUSPSigs[0] != "SP" {
		t.Errorf("root '.' SUSP: sp=%v er=%q sigs=%v", root.SP, root.ER, root.SUSPSigs)
	}
	if e := files["/a"].Entry; e.Nlink != 2+2 { // subdirectories b and deep
		t.Errorf("/a nlink %d, want 4", e.Nlink)
	}
	if got := isotest.DecodeDirDate(files["/a/b/c/big.bin"].Entry.Date); !got.Equal(fileTime) {
		t.Errorf("big.bin recorded %v, want %v", got, fileTime)
	}
	if got := isotest.DecodeDirDate(files["/zero-time"].Entry.Date); !got.Equal(epoch) {
		t.Errorf("zero-time recorded %v, want the image time %v", got, epoch)
	}
	if tf := files["/suid"].Entry.TF; len(tf) != 22 || tf[0] != 0x0E || !isotest.DecodeDirDate(tf[1:]).Equal(fileTime) {
		t.Errorf("suid TF % x", tf)
	}
	if _, ok := files["/boot.catalog"]; !ok {
		t.Errorf("boot.catalog not in the tree")
	}
	if n := files["/a/"+longName].Entry.CECount; n != 1 {
		t.Errorf("long symlink with a long name used %d continuation areas, want 1", n)
	}

	// Joliet tree.
	jol := must(im.WalkJoliet(rootOf(t, svd)))(t)
	for _, p := range []string{"/a/MixedCase.TXT", "/a/mixedcase.txt", "/a/ünïcødé-名前.txt", "/a/b/c/big.bin",
		"/a/This_is_a_Very_Long_File_Name_with_MixedCase_that_exceeds_six.txt", "/boot/grub/grub.cfg"} {
		e, ok := jol[p]
		if !ok {
			t.Errorf("Joliet tree lacks %s (has %d entries)", p, len(jol))
			continue
		}
		if rr := files[strings.Replace(p, "exceeds_six.txt", "exceeds_sixty-four_characters.txt", 1)].Entry; e.LBA != rr.LBA || e.Size != rr.Size {
			t.Errorf("Joliet %s extent %d+%d, Rock Ridge %d+%d", p, e.LBA, e.Size, rr.LBA, rr.Size)
		}
	}

	// El Torito: boot record, catalog, patched boot image.
	catLBA := binary.LittleEndian.Uint32(br[71:])
	if string(br[7:30]) != "EL TORITO SPECIFICATION" {
		t.Errorf("boot system id %q", br[7:39])
	}
	cat := im.Block(catLBA)
	if files["/boot.catalog"].Entry.LBA != catLBA {
		t.Errorf("boot.catalog at %d, boot record says %d", files["/boot.catalog"].Entry.LBA, catLBA)
	}
	var sum uint16
	for i := 0; i < 32; i += 2 {
		sum += binary.LittleEndian.Uint16(cat[i:])
	}
	if cat[0] != 1 || cat[1] != platformX86 || cat[30] != 0x55 || cat[31] != 0xAA || sum != 0 {
		t.Errorf("validation entry % x (word sum %#x)", cat[:32], sum)
	}
	biosEntry, efiHeader, efiEntry := cat[32:64], cat[64:96], cat[96:128]
	bios := files["/boot/grub/eltorito.img"].Entry
	efi := files["/boot/uefi.img"].Entry
	if biosEntry[0] != 0x88 || biosEntry[1] != 0 || binary.LittleEndian.Uint16(biosEntry[2:]) != 0 ||
		binary.LittleEndian.Uint16(biosEntry[6:]) != 4 || binary.LittleEndian.Uint32(biosEntry[8:]) != bios.LBA {
		t.Errorf("BIOS entry % x, image at %d", biosEntry, bios.LBA)
	}
	if efiHeader[0] != 0x91 || efiHeader[1] != 0xEF || binary.LittleEndian.Uint16(efiHeader[2:]) != 1 {
		t.Errorf("EFI section header % x", efiHeader)
	}
	if efiEntry[0] != 0x88 || efiEntry[1] != 0 || binary.LittleEndian.Uint16(efiEntry[6:]) != uint16(blocks(int64(efi.Size))*4) ||
		binary.LittleEndian.Uint32(efiEntry[8:]) != efi.LBA {
		t.Errorf("EFI entry % x, image at %d (%d bytes)", efiEntry, efi.LBA, efi.Size)
	}
	patched := files["/boot/grub/eltorito.img"].Data
	checkBootInfo(t, fakeGRUBImage(), patched, bios.LBA)

	// System area: GRUB MBR code patched with the boot image's sector.
	mbr := b[:512]
	if !bytes.Equal(mbr[:432], fakeMBR()[:432]) {
		t.Errorf("MBR code not copied")
	}
	if got := binary.LittleEndian.Uint64(mbr[0x1B0:]); got != uint64(bios.LBA)*4+4 {
		t.Errorf("MBR 0x1B0 = %d, want %d", got, uint64(bios.LBA)*4+4)
	}
	checkGPT(t, b, []wantPart{
		{"Gap0", gpt.BasicData, 64, uint64(efi.LBA) * 4},
		{"EFI boot partition", gpt.EFISystem, uint64(efi.LBA) * 4, uint64(efi.LBA+uint32(blocks(int64(efi.Size)))) * 4},
		{"Gap1", gpt.BasicData, uint64(efi.LBA+uint32(blocks(int64(efi.Size)))) * 4, uint64(len(b))/512 - 64},
	})
}

// must fails the test on err, else returns v.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// rootOf is the root directory extent of volume descriptor vd.
func rootOf(t *testing.T, vd []byte) (uint32, uint32) {
	t.Helper()
	lba, size, err := isotest.RootOf(vd)
	if err != nil {
		t.Fatal(err)
	}
	return lba, size
}

// checkBootInfo recomputes the boot info table and GRUB 2 boot info.
func checkBootInfo(t *testing.T, orig, patched []byte, lba uint32) {
	t.Helper()
	if len(patched) != len(orig) {
		t.Fatalf("boot image is %d bytes, source %d", len(patched), len(orig))
	}
	if got := binary.LittleEndian.Uint64(patched[2548:]); got != uint64(lba)*4+5 {
		t.Errorf("GRUB 2 boot info %d, want %d", got, uint64(lba)*4+5)
	}
	le := binary.LittleEndian
	if pvd, file, length := le.Uint32(patched[8:]), le.Uint32(patched[12:]), le.Uint32(patched[16:]); pvd != 16 || file != lba || length != uint32(len(orig)) {
		t.Errorf("boot info table pvd=%d file=%d len=%d, want 16 %d %d", pvd, file, length, lba, len(orig))
	}
	var sum uint32
	padded := append(append([]byte{}, patched...), 0, 0, 0)
	for i := 64; i < len(patched); i += 4 {
		sum += le.Uint32(padded[i:])
	}
	if got := le.Uint32(patched[20:]); got != sum {
		t.Errorf("boot info checksum %#x, want %#x", got, sum)
	}
	if !bytes.Equal(patched[24:64], make([]byte, 40)) {
		t.Errorf("boot info reserved bytes not zero")
	}
	// Nothing else changed.
	for i := range orig {
		if (i >= 8 && i < 64) || (i >= 2548 && i < 2556) {
			continue
		}
		if orig[i] != patched[i] {
			t.Fatalf("boot image byte %d changed", i)
		}
	}
}

type wantPart struct {
	name       string
	typ        GUID
	start, end uint64 // sectors, end exclusive
}

// checkGPT reads both GPT copies and checks headers, CRCs and partitions.
func checkGPT(t *testing.T, b []byte, want []wantPart) {
	t.Helper()
	le := binary.LittleEndian
	total := uint64(len(b)) / 512
	mbrEntry := b[446:462]
	if mbrEntry[4] != 0xEE || le.Uint32(mbrEntry[8:]) != 1 || uint64(le.Uint32(mbrEntry[12:])) != total-1 || b[510] != 0x55 || b[511] != 0xAA {
		t.Errorf("protective MBR entry % x", mbrEntry)
	}
	for _, hdrLBA := range []uint64{1, total - 1} {
		h := b[hdrLBA*512 : hdrLBA*512+512]
		if string(h[:8]) != "EFI PART" {
			t.Fatalf("no GPT header at sector %d", hdrLBA)
		}
		crc := le.Uint32(h[16:])
		hh := append([]byte{}, h[:92]...)
		clear(hh[16:20])
		if crc32.ChecksumIEEE(hh) != crc {
			t.Errorf("GPT header at %d: bad CRC", hdrLBA)
		}
		my, alt, first, last := le.Uint64(h[24:]), le.Uint64(h[32:]), le.Uint64(h[40:]), le.Uint64(h[48:])
		if my != hdrLBA || (alt != 1 && alt != total-1) || first != 64 || last != total-64 {
			t.Errorf("GPT header at %d: my %d alt %d usable %d-%d", hdrLBA, my, alt, first, last)
		}
		arr := le.Uint64(h[72:])
		n, sz := le.Uint32(h[80:]), le.Uint32(h[84:])
		entries := b[arr*512 : arr*512+uint64(n*sz)]
		if crc32.ChecksumIEEE(entries) != le.Uint32(h[88:]) {
			t.Errorf("GPT at %d: bad entry array CRC", hdrLBA)
		}
		if n != 248 || sz != 128 {
			t.Errorf("GPT: %d entries of %d bytes", n, sz)
		}
		for i, w := range want {
			e := entries[i*128:]
			var typ GUID
			copy(typ[:], e[:16])
			name := utf16le(e[56:128])
			if enc := w.typ.Encode(); !bytes.Equal(e[:16], enc[:]) || name != w.name || le.Uint64(e[32:]) != w.start || le.Uint64(e[40:]) != w.end-1 {
				t.Errorf("GPT entry %d: %q %d-%d, want %q %d-%d", i+1, name, le.Uint64(e[32:]), le.Uint64(e[40:]), w.name, w.start, w.end-1)
			}
		}
		if e := entries[len(want)*128:]; !bytes.Equal(e[:16], make([]byte, 16)) {
			t.Errorf("GPT entry %d is used", len(want)+1)
		}
	}
}

func utf16le(b []byte) string {
	var r []rune
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		r = append(r, rune(c))
	}
	return string(r)
}

// TestReproducible writes the same image twice, from two separately built
// trees, and wants identical bytes.
func TestReproducible(t *testing.T) {
	_, a := writeTemp(t, hybridImage(newTestTree(t)), "a.iso")
	_, b := writeTemp(t, hybridImage(newTestTree(t)), "b.iso")
	if sha256.Sum256(a) != sha256.Sum256(b) {
		t.Fatalf("two writes of the same image differ")
	}
	// A different epoch changes the bytes (the clock is not read, the
	// option is).
	img := hybridImage(newTestTree(t))
	img.ModTime = epoch.Add(time.Hour)
	_, c := writeTemp(t, img, "c.iso")
	if bytes.Equal(a, c) {
		t.Fatalf("ModTime has no effect")
	}
}

// TestAppendedESP puts the ESP after the ISO 9660 data as GPT partition 2
// (-append_partition 2 0xef ... -appended_part_as_gpt): the El Torito EFI
// entry points at it, and it is not in the tree.
func TestAppendedESP(t *testing.T) {
	tt := newTestTree(t)
	esp := pseudoRandom(9, 1<<20+1000)
	img := hybridImage(tt)
	img.EFIBoot = &EFIBoot{Image: bytes.NewReader(esp), Size: int64(len(esp))}
	_, b := writeTemp(t, img, "appended.iso")
	im := isotest.New(b)
	vds := must(im.Descriptors())(t)
	cat := im.Block(binary.LittleEndian.Uint32(vds[vdBoot][71:]))
	espLBA := binary.LittleEndian.Uint32(cat[96+8:])
	volBlocks := must(isotest.Both32(vds[vdPrimary][80:], "volume space size"))(t)
	if espLBA != volBlocks {
		t.Errorf("appended ESP at block %d, ISO ends at %d", espLBA, volBlocks)
	}
	if got := im.Extent(espLBA, uint32(len(esp))); !bytes.Equal(got, esp) {
		t.Errorf("appended ESP content differs")
	}
	if n := binary.LittleEndian.Uint16(cat[96+6:]); n != uint16(blocks(int64(len(esp)))*4) {
		t.Errorf("EFI sector count %d", n)
	}
	espSectors := uint64(blocks(int64(len(esp))) * 4)
	checkGPT(t, b, []wantPart{
		{"Gap0", gpt.BasicData, 64, uint64(espLBA) * 4},
		{"Appended2", gpt.EFISystem, uint64(espLBA) * 4, uint64(espLBA)*4 + espSectors},
	})
	if uint64(len(b))/512 != uint64(espLBA)*4+espSectors+64 {
		t.Errorf("image ends at sector %d, want ESP end + 64", len(b)/512)
	}
}

// TestMinimal writes an image with no boot options and no Joliet: no
// system area content, no El Torito, still Rock Ridge.
func TestMinimal(t *testing.T) {
	root := fstree.Dir(0o755, epoch.Unix())
	if err := root.Add("hello.txt", fstree.File([]byte("hi"), 0o644, epoch.Unix()), 0o755, epoch.Unix()); err != nil {
		t.Fatal(err)
	}
	_, b := writeTemp(t, &Image{VolumeID: "MIN", ModTime: epoch, Root: root}, "min.iso")
	if !bytes.Equal(b[:systemAreaSize], make([]byte, systemAreaSize)) {
		t.Errorf("system area not empty")
	}
	im := isotest.New(b)
	vds := must(im.Descriptors())(t)
	if _, ok := vds[vdBoot]; ok {
		t.Errorf("boot record without boot images")
	}
	if _, ok := vds[vdSupplementary]; ok {
		t.Errorf("Joliet descriptor without Joliet")
	}
	files := must(im.WalkRockRidge(rootOf(t, vds[vdPrimary])))(t)
	if string(files["/hello.txt"].Data) != "hi" {
		t.Errorf("hello.txt: %q", files["/hello.txt"].Data)
	}
	// PVD, terminator, 2 path tables, root, continuation (ER), file.
	if len(b) != (firstVDLBA+7)*BlockSize {
		t.Errorf("minimal image is %d blocks", len(b)/BlockSize)
	}
}

// TestMBROnly: GRUB MBR without a GPT (no EFI partition) gets the
// grub-mkrescue style bootable 0xCD partition.
func TestMBROnly(t *testing.T) {
	tt := newTestTree(t)
	img := hybridImage(tt)
	img.EFIBoot = nil
	_, b := writeTemp(t, img, "mbr.iso")
	e := b[446:462]
	if e[0] != 0x80 || e[4] != 0xCD || binary.LittleEndian.Uint32(e[8:]) != 1 ||
		binary.LittleEndian.Uint32(e[12:]) != uint32(len(b)/512-1) {
		t.Errorf("MBR entry % x", e)
	}
	if string(b[512:520]) == "EFI PART" {
		t.Errorf("GPT written without an EFI partition")
	}
}

func TestErrors(t *testing.T) {
	big := &fstree.Node{Name: "huge", Size: 4 << 30, Open: func() (io.ReadCloser, error) { t.Fatal("opened"); return nil, nil }}
	file := func(name string, size int) *fstree.Node {
		n := fstree.File(make([]byte, size), 0, 0)
		n.Name = name
		return n
	}
	root := func(children ...*fstree.Node) *fstree.Node {
		d := fstree.Dir(0, 0)
		d.Children = children
		return d
	}
	ok := func(more ...*fstree.Node) *fstree.Node {
		return root(append([]*fstree.Node{file("boot.img", 4096), file("efi.img", 4096), file("tiny.img", 100)}, more...)...)
	}
	withBig := ok(big)
	cases := []struct {
		name string
		img  *Image
		want string
	}{
		{"no time", &Image{VolumeID: "X", Root: ok()}, "ModTime is not set"},
		{"no volume id", &Image{ModTime: epoch, Root: ok()}, "VolumeID is empty"},
		{"long volume id", &Image{VolumeID: strings.Repeat("A", 33), ModTime: epoch, Root: ok()}, "at most 32"},
		{"4 GiB", &Image{VolumeID: "X", ModTime: epoch, Root: withBig}, "4 GiB"},
		{"missing boot image", &Image{VolumeID: "X", ModTime: epoch, Root: ok(), BIOSBoot: &BIOSBoot{Path: "nope"}}, "not in the tree"},
		{"boot image too small", &Image{VolumeID: "X", ModTime: epoch, Root: ok(), BIOSBoot: &BIOSBoot{Path: "tiny.img", GRUB2BootInfo: true}}, "too small for the GRUB 2 boot info"},
		{"efi both", &Image{VolumeID: "X", ModTime: epoch, Root: ok(), EFIBoot: &EFIBoot{Path: "efi.img", Image: bytes.NewReader(nil), Size: 1}}, "either Path"},
		{"same image", &Image{VolumeID: "X", ModTime: epoch, Root: ok(), BIOSBoot: &BIOSBoot{Path: "boot.img"}, EFIBoot: &EFIBoot{Path: "boot.img"}}, "both the BIOS and the EFI"},
		{"catalog clash", &Image{VolumeID: "X", ModTime: epoch, Root: ok(), BIOSBoot: &BIOSBoot{Path: "boot.img"}, CatalogPath: "efi.img"}, "already in the tree"},
		{"short mbr", &Image{VolumeID: "X", ModTime: epoch, Root: ok(), BIOSBoot: &BIOSBoot{Path: "boot.img", MBRCode: []byte{1}}}, "boot_hybrid.img"},
		{"fifo", &Image{VolumeID: "X", ModTime: epoch, Root: ok(&fstree.Node{Name: "fifo", Mode: fs.ModeNamedPipe | 0o644})}, "/fifo: file type p--------- is not supported"},
		{"device", &Image{VolumeID: "X", ModTime: epoch, Root: ok(&fstree.Node{Name: "sda", Mode: fs.ModeDevice | 0o600})}, "/sda: file type D--------- is not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Write(discard{}, c.img)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}

	for _, name := range []string{"", ".", "..", "a/b", strings.Repeat("n", 256)} {
		if err := Write(discard{}, &Image{VolumeID: "X", ModTime: epoch, Root: root(file(name, 100))}); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if err := Write(discard{}, &Image{VolumeID: "X", ModTime: epoch, Root: root(file("x", 100), file("x", 100))}); err == nil {
		t.Errorf("duplicate accepted")
	}
	d := root(file("x", 100))
	if err := d.Add("x/y", file("", 100), 0, 0); err == nil {
		t.Errorf("Add through a file accepted")
	}

	// A file whose content is shorter than its size fails the write.
	short := root(&fstree.Node{Name: "f", Size: 10, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("abc")), nil }})
	if err := Write(discard{}, &Image{VolumeID: "X", ModTime: epoch, Root: short}); err == nil || !strings.Contains(err.Error(), "/f: content ended") {
		t.Errorf("short content: %v", err)
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

func TestNames(t *testing.T) {
	got := uniqueISONames(
		[]string{"README", "a.b.c.tar.gz", "MixedCase.TXT", "mixedcase.txt", ".hidden", "dir.with.dots", strings.Repeat("x", 40) + ".extension_long", "ünï"},
		[]bool{false, false, false, false, false, true, false, false})
	want := []string{"README.;1", "A_B_C_TAR.GZ;1", "MIXEDCASE.TXT;1", "MIXEDCASE1.TXT;1", "_HIDDEN.;1", "DIR_WITH_DOTS", strings.Repeat("X", 22) + ".EXTENSIO;1", "_N_.;1"}
	for i := range want {
		if string(got[i].ident()) != want[i] {
			t.Errorf("ISO name %d: %q, want %q", i, got[i].ident(), want[i])
		}
	}
	j := uniqueJolietNames([]string{strings.Repeat("a", 70) + ".txt", strings.Repeat("a", 70) + ".txt2", "a:b?*"}, []bool{false, false, true})
	if k := j[0].key(); len(k) != 65 || !strings.HasSuffix(k, ".txt") || j[1].key() != strings.Repeat("a", 60)+".txt2" {
		t.Errorf("Joliet long name %q (%d)", k, len(k))
	}
	if j[2].key() != "a_b__" || string(j[2].ident()) != string(ucs2("a_b__")) {
		t.Errorf("Joliet dir name %q", j[2].key())
	}
}

// TestContinuationChain splits more System Use than one block holds and
// reads it back through the CE chain.
func TestContinuationChain(t *testing.T) {
	var entries [][]byte
	for i := range 30 {
		entries = append(entries, nmEntries(strings.Repeat(string(rune('a'+i%26)), 250))[0])
	}
	for i := range entries[:len(entries)-1] {
		entries[i][4] = 1 // one long name in 30 NM entries
	}
	su := splitSystemUse(append([][]byte{pxEntry(sIFREG|0o644, 1, 0, 0)}, entries...), 200)
	if len(su.areas) != 5 { // 7 entries of 255 bytes and a CE per block
		t.Fatalf("%d areas, want 5", len(su.areas))
	}
	img := make([]byte, (len(su.areas)+1)*BlockSize)
	for i, a := range su.areas {
		if a.size > BlockSize {
			t.Fatalf("area %d: %d bytes", i, a.size)
		}
		a.lba, a.offset = uint32(i+1), uint32(BlockSize-a.size) // end of its block
	}
	for i, a := range su.areas {
		b := su.areaBytes(i)
		if len(b) != a.size {
			t.Fatalf("area %d: %d bytes serialized, %d planned", i, len(b), a.size)
		}
		copy(img[int(a.lba)*BlockSize+int(a.offset):], b)
	}
	inline := su.appendInline(nil)
	if len(inline) > 200 || len(inline) != su.inlineLen() {
		t.Fatalf("inline %d bytes (planned %d, room 200)", len(inline), su.inlineLen())
	}
	var e isotest.Entry
	if err := isotest.New(img).ParseSUSP(inline, &e); err != nil {
		t.Fatal(err)
	}
	if e.CECount != 5 || !e.HasPX || len(e.Name) != 30*250 {
		t.Fatalf("read back %d CE, PX %v, name of %d bytes", e.CECount, e.HasPX, len(e.Name))
	}
}

func TestSymlinkEncoding(t *testing.T) {
	if _, err := slEntries(strings.Repeat("x", 1024)); err == nil {
		t.Errorf("1024-byte target accepted")
	}
	for _, target := range []string{"/", "a", "/usr/lib/x", "../../x", "./y", strings.Repeat("q", 600), "a//b/", strings.Repeat("abc/", 255)} {
		entries, err := slEntries(target)
		if err != nil {
			t.Fatal(err)
		}
		var su []byte
		for _, e := range entries {
			if len(e) > 255 {
				t.Fatalf("SL entry of %d bytes", len(e))
			}
			su = append(su, e...)
		}
		var e isotest.Entry
		if err := isotest.New(nil).ParseSUSP(su, &e); err != nil {
			t.Fatal(err)
		}
		if e.Link != isotest.NormLink(target) {
			t.Errorf("%q read back as %q", target, e.Link)
		}
	}
}

// ---- Checks with the external tools the project uses as judges. ----

func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not installed: ./earthly.sh +test installs the reference tools (see APT_PACKAGES)", tool)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func mustMatch(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(out) {
			t.Errorf("%s: no match for %q in:\n%s", what, p, out)
		}
	}
}

// TestXorrisoReads has xorriso (libisofs) load the image: El Torito, system
// area, Rock Ridge listing, Joliet listing, and an extraction compared file
// by file.
func TestXorrisoReads(t *testing.T) {
	need(t, "xorriso")
	tt := newTestTree(t)
	p, _ := writeTemp(t, hybridImage(tt), "x.iso")

	el := must(isotest.Report(p))(t) // fails on FAILURE and SORRY
	mustMatch(t, "report", el,
		`El Torito boot img :\s+1\s+BIOS\s+y\s+none\s+0x0000\s+0x00\s+4\s+\d+`,
		`El Torito boot img :\s+2\s+UEFI\s+y\s+none\s+0x0000\s+0x00\s+2052\s+\d+`,
		`El Torito img path :\s+1\s+/boot/grub/eltorito.img`,
		`El Torito img opts :\s+1\s+boot-info-table grub2-boot-info`,
		`El Torito img path :\s+2\s+/boot/uefi.img`,
		`El Torito cat path :\s+/boot.catalog`,
		`System area summary: MBR protective-msdos-label grub2-mbr cyl-align-off GPT`,
		`MBR partition      :\s+1\s+0x00\s+0xee\s+1\s+\d+`,
		`GPT partname local :\s+1\s+Gap0`,
		`GPT partname local :\s+2\s+EFI boot partition`,
		`GPT partition path :\s+2\s+/boot/uefi.img`,
		`GPT partname local :\s+3\s+Gap1`,
		`GPT type GUID      :\s+2\s+28732ac11ff8d211ba4b00a0c93ec93b`,
		`Volume id    : 'COS_LIVE'`,
	)

	ls := must(isotest.List(p, "any"))(t)
	mustMatch(t, "Rock Ridge listing", ls,
		`lrwxrwxrwx\s+1\s+0\s+0\s+0 .* '/a/link' -> '\.\./boot/grub/grub\.cfg'`,
		`lrwxrwxrwx .* '/a/abs' -> '/boot/kernel'`,
		`-rwxr-xr-x\s+1\s+0\s+0\s+8000 May\s+6\s+2024 '/boot/kernel'`,
		`-rwsr-xr-x\s+1\s+1000\s+100\s+10 .* '/suid'`,
		`-rw-------\s+1\s+0\s+0\s+0 .* '/empty'`,
		`'/a/This_is_a_Very_Long_File_Name_with_MixedCase_that_exceeds_sixty-four_characters\.txt'`,
		`'/a/ünïcødé-名前\.txt'`,
		`'/a/`+longName[:255-len(".longext")]+`\.longext'`,
		`'/a/deep/1/2/3/4/5/6/7/8/9/leaf'`,
		`drwxr-xr-x\s+\d+\s+0\s+0\s+\d+ .* '/a/b/c'`,
	)

	jol := must(isotest.List(p, "norock"))(t)
	mustMatch(t, "Joliet listing", jol,
		`'/a/This_is_a_Very_Long_File_Name_with_MixedCase_that_exceeds_six\.txt'`,
		`'/a/MixedCase\.TXT'`, `'/a/mixedcase\.txt'`)
	plain := must(isotest.List(p, "ecma119"))(t)
	mustMatch(t, "ISO 9660 listing", plain, `'/A/MIXEDCASE\.TXT'`, `'/A/MIXEDCASE1\.TXT'`, `'/A/B/C/BIG\.BIN'`)

	// What xorriso extracts is the tree: every content, link, mode, owner
	// and time.
	if err := isotest.Verify(p, tt.root, isotest.Options{Extra: []string{"/boot.catalog"}, Patched: []string{"/boot/grub/eltorito.img"}}); err != nil {
		t.Error(err)
	}
}

// TestPartitionTools checks the hybrid disk view with fdisk and sgdisk.
func TestPartitionTools(t *testing.T) {
	fdisk, sgdisk := need(t, "fdisk"), need(t, "sgdisk")
	p, _ := writeTemp(t, hybridImage(newTestTree(t)), "p.iso")
	out := run(t, fdisk, "-l", p)
	mustMatch(t, "fdisk", out, `Disklabel type: gpt`, `p\.iso2\s+\d+\s+\d+\s+\d+\s+\S+ EFI System`, `p\.iso1 .*Microsoft basic data`)
	v := run(t, sgdisk, "-v", p)
	mustMatch(t, "sgdisk -v", v, `No problems found`)

	// Appended ESP too.
	esp := pseudoRandom(9, 1<<20+1000)
	img := hybridImage(newTestTree(t))
	img.EFIBoot = &EFIBoot{Image: bytes.NewReader(esp), Size: int64(len(esp))}
	p2, _ := writeTemp(t, img, "q.iso")
	mustMatch(t, "sgdisk -v appended", run(t, sgdisk, "-v", p2), `No problems found`)
	mustMatch(t, "fdisk appended", run(t, fdisk, "-l", p2), `q\.iso2\s+\d+\s+\d+\s+2052\s+1M EFI System`)
	if xorriso, err := exec.LookPath("xorriso"); err == nil {
		mustMatch(t, "xorriso appended", run(t, xorriso, "-indev", p2, "-report_el_torito", "plain", "-report_system_area", "plain"),
			`El Torito boot img :\s+2\s+UEFI\s+y\s+none\s+0x0000\s+0x00\s+2052\s+\d+`,
			`GPT partname local :\s+2\s+Appended2`)
	}
}

// patternReader yields n bytes of a repeating pattern without holding them.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.left))
	for i := range b[:n] {
		b[i] = byte(i * 7)
	}
	p.left -= int64(n)
	return n, nil
}

// seqCheck is a WriterAt that wants sequential writes and hashes them.
type seqCheck struct {
	next int64
	h    hash.Hash
	err  error
}

func (s *seqCheck) WriteAt(p []byte, off int64) (int, error) {
	if off != s.next && s.err == nil {
		s.err = fmt.Errorf("write at %d, expected %d", off, s.next)
	}
	s.next += int64(len(p))
	s.h.Write(p)
	return len(p), nil
}

// TestStreamsLargeFile writes a 1 GiB file through a reader and checks that
// it is streamed (the writer allocates far less than the file) and written
// front to back.
func TestStreamsLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB of data")
	}
	const size = 1 << 30
	root := fstree.Dir(0o755, epoch.Unix())
	root.Children = []*fstree.Node{{Name: "rootfs.squashfs", Mode: 0o444, ModTime: epoch.Unix(), Size: size,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(&patternReader{left: size}), nil }}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w := &seqCheck{h: sha256.New()}
	if err := Write(w, &Image{VolumeID: "BIG", ModTime: epoch, Root: root}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if w.err != nil {
		t.Fatal(w.err)
	}
	if w.next < size {
		t.Fatalf("wrote %d bytes", w.next)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("allocated %d MiB writing a 1 GiB file: not streamed", alloc>>20)
	}
}
