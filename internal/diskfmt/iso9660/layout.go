package iso9660

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
	"github.com/kairos-io/kairos/internal/fstree"
)

// node is an entry of the tree as laid out: the Image's fstree.Node plus
// names, records and block addresses of both directory trees.
type node struct {
	name   string      // Rock Ridge name; "" for the root
	path   string      // for error messages
	parent *node       // the root's parent is itself
	mode   fs.FileMode // permissions, setuid, setgid, sticky
	uid    uint32
	gid    uint32
	mtime  int64 // seconds: the 7-byte dates hold no fraction
	dir    bool
	link   string // symlink target, if a symlink
	isLink bool

	// Content of a regular file: from open, or held in data (the patched
	// BIOS boot image, the boot catalog).
	size int64
	open func() (io.ReadCloser, error)
	data []byte

	children []*node // sorted by name: tree order, the order data is laid out
	nlink    uint32

	extent uint32 // file data or ISO 9660 directory LBA

	// ISO 9660 + Rock Ridge tree.
	isoName isoName
	isoKids []*node
	isoRecs []record
	isoSize int64

	// Joliet tree.
	jolName   jolietName
	jolKids   []*node
	jolRecs   []record
	jolSize   int64
	jolExtent uint32
}

// extentOf is what a directory record of n says: location, data length,
// flags.
func (n *node) extentOf(joliet bool) (lba, size uint32, flags byte) {
	switch {
	case n.dir && joliet:
		return n.jolExtent, uint32(n.jolSize), flagDirectory
	case n.dir:
		return n.extent, uint32(n.isoSize), flagDirectory
	case n.isLink:
		return 0, 0, 0
	default:
		return n.extent, uint32(n.size), 0
	}
}

// treeLayout is one directory tree's path table and directory order.
type treeLayout struct {
	dirs     []*node // breadth first: path table and extent order
	pt       []ptEntry
	ptSize   int64
	ptL, ptM uint32
}

// layout is an Image with every byte's place decided.
type layout struct {
	img  *Image
	root *node

	isoTree    treeLayout
	jolietTree treeLayout
	ceLBA      uint32
	ceBlocks   int64

	catalog    *node // nil without El Torito
	biosBoot   *node
	efiBoot    *node   // in-tree EFI image
	files      []*node // in data order
	bootRecLBA uint32
	svdLBA     uint32
	termLBA    uint32

	espAppended bool
	espLBA      uint32 // EFI image (in the tree or appended)
	espSectors  uint32 // its size in 512-byte sectors, for the GPT
	espBlocks   int64  // appended image blocks
	gpt         bool
	diskGUID    GUID

	isoEndLBA    uint32 // end of the ISO 9660 data
	volumeBlocks uint32 // Volume Space Size of the descriptors
	totalBlocks  int64  // the whole image file
}

// Size returns the size in bytes of the image Write produces for img.
func Size(img *Image) (int64, error) {
	l, err := plan(img)
	if err != nil {
		return 0, err
	}
	return l.totalBlocks * BlockSize, nil
}

// plan validates img and lays it out.
func plan(img *Image) (*layout, error) {
	if err := validate(img); err != nil {
		return nil, err
	}
	l := &layout{img: img}
	var err error
	if l.root, err = buildTree(img.Root); err != nil {
		return nil, err
	}
	if err := l.attachBoot(); err != nil {
		return nil, err
	}
	l.numberLinks(l.root)
	if err := l.buildISOTree(); err != nil {
		return nil, err
	}
	if img.Joliet {
		if err := l.buildJolietTree(); err != nil {
			return nil, err
		}
	}
	if err := l.allocate(); err != nil {
		return nil, err
	}
	if err := l.finishBoot(); err != nil {
		return nil, err
	}
	if l.gpt {
		l.diskGUID = img.DiskGUID
		if l.diskGUID == (GUID{}) {
			l.diskGUID = l.derivedGUID()
		}
	}
	return l, nil
}

func validate(img *Image) error {
	switch {
	case img == nil:
		return fmt.Errorf("iso9660: nil image")
	case img.Root == nil:
		return fmt.Errorf("iso9660: image has no root directory")
	case img.ModTime.IsZero():
		return fmt.Errorf("iso9660: ModTime is not set (use SOURCE_DATE_EPOCH): the writer never reads the clock")
	case img.VolumeID == "":
		return fmt.Errorf("iso9660: VolumeID is empty")
	case len(img.VolumeID) > 32:
		return fmt.Errorf("iso9660: VolumeID %q is %d characters, at most 32 fit", img.VolumeID, len(img.VolumeID))
	}
	for _, c := range []byte(img.VolumeID) {
		if c < 0x20 || c > 0x7E {
			return fmt.Errorf("iso9660: VolumeID %q: only printable ASCII is allowed (ECMA-119 asks for A-Z, 0-9 and _)", img.VolumeID)
		}
	}
	if e := img.EFIBoot; e != nil {
		switch {
		case (e.Path == "") == (e.Image == nil):
			return fmt.Errorf("iso9660: EFIBoot: set either Path (an image in the tree) or Image (an appended image)")
		case e.Image != nil && e.Size <= 0:
			return fmt.Errorf("iso9660: EFIBoot: appended image has size %d", e.Size)
		}
	}
	if b := img.BIOSBoot; b != nil && b.Path == "" {
		return fmt.Errorf("iso9660: BIOSBoot: Path of the boot image in the tree is empty")
	}
	return nil
}

// buildTree copies the Image tree into nodes, children sorted by name.
func buildTree(root *fstree.Node) (*node, error) {
	if !root.Mode.IsDir() {
		return nil, fmt.Errorf("iso9660: the root is not a directory")
	}
	n := newNode(root, "/")
	n.name, n.parent, n.dir = "", n, true // a root's Name is ignored
	return n, fillNode(n, root)
}

// newNode is n's metadata: what Rock Ridge PX and TF record.
func newNode(n *fstree.Node, p string) *node {
	return &node{name: n.Name, path: p, mode: n.Mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
		uid: n.UID, gid: n.GID, mtime: n.ModTime}
}

func fillNode(n *node, d *fstree.Node) error {
	children, err := fstree.Sorted(d, maxNameLen)
	if err != nil {
		return fmt.Errorf("iso9660: %s: %w", n.path, err)
	}
	for _, e := range children {
		p := strings.TrimSuffix(n.path, "/") + "/" + e.Name
		c := newNode(e, p)
		c.parent = n
		switch t := e.Mode.Type(); {
		case t == fs.ModeDir:
			c.dir = true
			if err := fillNode(c, e); err != nil {
				return err
			}
		case t.IsRegular():
			if e.Open == nil && e.Size != 0 {
				return fmt.Errorf("iso9660: %s: file has no Open function", p)
			}
			if e.Size < 0 {
				return fmt.Errorf("iso9660: %s: negative size %d", p, e.Size)
			}
			if e.Size > math.MaxUint32 {
				return fmt.Errorf("iso9660: %s: %d bytes: files of 4 GiB or more need multi-extent files, which this writer does not write", p, e.Size)
			}
			c.size, c.open = e.Size, e.Open
		case t == fs.ModeSymlink:
			c.isLink, c.link = true, e.Target
		default:
			return fmt.Errorf("iso9660: %s: file type %v is not supported (only directories, regular files and symlinks)", p, t)
		}
		n.children = append(n.children, c)
	}
	return nil
}

// lookup finds a node by slash-separated path.
func (l *layout) lookup(p string) (*node, error) {
	n := l.root
	parts := fstree.SplitPath(p)
	for _, part := range parts {
		var next *node
		for _, c := range n.children {
			if c.name == part {
				next = c
				break
			}
		}
		if next == nil {
			return nil, fmt.Errorf("%s: not in the tree", p)
		}
		n = next
	}
	return n, nil
}

// attachBoot finds the boot images in the tree and adds the catalog.
func (l *layout) attachBoot() error {
	img := l.img
	if img.BIOSBoot == nil && img.EFIBoot == nil {
		if img.CatalogPath != "" {
			return fmt.Errorf("iso9660: CatalogPath %q set without a boot image", img.CatalogPath)
		}
		return nil
	}
	l.catalog = &node{name: "boot.catalog", path: "(boot catalog)", size: catalogSize, mtime: img.ModTime.Unix()}
	if img.CatalogPath != "" {
		parts := fstree.SplitPath(img.CatalogPath)
		if len(parts) == 0 {
			return fmt.Errorf("iso9660: CatalogPath: path %q names the root", img.CatalogPath)
		}
		parent := l.root
		var err error
		if len(parts) > 1 {
			if parent, err = l.lookup(strings.Join(parts[:len(parts)-1], "/")); err != nil || !parent.dir {
				return fmt.Errorf("iso9660: CatalogPath %q: the parent directory must be in the tree", img.CatalogPath)
			}
		}
		name := parts[len(parts)-1]
		if err := fstree.CheckName(name, maxNameLen); err != nil {
			return fmt.Errorf("iso9660: CatalogPath %q: %w", img.CatalogPath, err)
		}
		for _, c := range parent.children {
			if c.name == name {
				return fmt.Errorf("iso9660: CatalogPath %q is already in the tree", img.CatalogPath)
			}
		}
		// The catalog shows as a read-only file owned by root, dated with
		// the volume, as xorriso shows it.
		l.catalog.name, l.catalog.path, l.catalog.parent = name, img.CatalogPath, parent
		l.catalog.mode = 0o444
		i, _ := slices.BinarySearchFunc(parent.children, name, func(c *node, n string) int { return strings.Compare(c.name, n) })
		parent.children = slices.Insert(parent.children, i, l.catalog)
	}

	if b := img.BIOSBoot; b != nil {
		n, err := l.lookup(b.Path)
		if err != nil {
			return fmt.Errorf("iso9660: BIOS boot image: %w", err)
		}
		if n.dir || n.isLink || n == l.catalog {
			return fmt.Errorf("iso9660: BIOS boot image %s is not a regular file", b.Path)
		}
		if n.size > maxBIOSImage {
			return fmt.Errorf("iso9660: BIOS boot image %s is %d bytes, more than the %d this writer patches in memory", b.Path, n.size, maxBIOSImage)
		}
		if len(b.MBRCode) > 0 && len(b.MBRCode) < mbrCodeSize {
			return fmt.Errorf("iso9660: MBR code is %d bytes, want GRUB's 512-byte boot_hybrid.img", len(b.MBRCode))
		}
		if b.BootInfoTable || b.GRUB2BootInfo {
			// Read now: the patched copy replaces the file's content.
			data, err := readAll(n)
			if err != nil {
				return fmt.Errorf("iso9660: BIOS boot image %s: %w", b.Path, err)
			}
			n.data = data
		}
		l.biosBoot = n
	}
	if e := img.EFIBoot; e != nil {
		if e.Image != nil {
			l.espAppended, l.gpt = true, true
			l.espBlocks = blocks(e.Size)
			l.espSectors = uint32(l.espBlocks * 4)
			if e.Size > math.MaxUint32 {
				return fmt.Errorf("iso9660: appended EFI image is %d bytes, more than 4 GiB", e.Size)
			}
		} else {
			n, err := l.lookup(e.Path)
			if err != nil {
				return fmt.Errorf("iso9660: EFI boot image: %w", err)
			}
			if n.dir || n.isLink || n == l.catalog {
				return fmt.Errorf("iso9660: EFI boot image %s is not a regular file", e.Path)
			}
			if n == l.biosBoot {
				return fmt.Errorf("iso9660: %s cannot be both the BIOS and the EFI boot image", e.Path)
			}
			if n.size == 0 {
				return fmt.Errorf("iso9660: EFI boot image %s is empty", e.Path)
			}
			l.efiBoot = n
			l.gpt = e.Partition
			// Whole 2 KiB blocks, as xorriso counts the partition: the
			// rest of the last block is zero padding of the file.
			l.espSectors = uint32(blocks(n.size) * 4)
		}
	}
	return nil
}

func readAll(n *node) ([]byte, error) {
	if n.open == nil {
		return []byte{}, nil // empty
	}
	r, err := n.open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, n.size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("reading %d bytes: %w", n.size, err)
	}
	return b, nil
}

// numberLinks sets the POSIX link counts: 2 + subdirectories for a
// directory, 1 for anything else (hard links are not kept).
func (l *layout) numberLinks(n *node) {
	n.nlink = 1
	if !n.dir {
		return
	}
	n.nlink = 2
	for _, c := range n.children {
		if c.dir {
			n.nlink++
		}
		l.numberLinks(c)
	}
}

// buildISOTree names the ISO 9660 entries, sorts them, builds every
// directory's records with their Rock Ridge entries and the path table.
func (l *layout) buildISOTree() error {
	var walk func(d *node) error
	walk = func(d *node) error {
		names := make([]string, len(d.children))
		dirs := make([]bool, len(d.children))
		for i, c := range d.children {
			names[i], dirs[i] = c.name, c.dir
		}
		for i, n := range uniqueISONames(names, dirs) {
			d.children[i].isoName = n
		}
		d.isoKids = slices.Clone(d.children)
		slices.SortFunc(d.isoKids, func(a, b *node) int {
			if a.isoName.less(b.isoName) {
				return -1
			}
			return 1
		})
		recs, err := l.isoRecords(d)
		if err != nil {
			return err
		}
		d.isoRecs = recs
		d.isoSize = dirSize(recs)
		for _, c := range d.isoKids {
			if c.dir {
				if err := walk(c); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(l.root); err != nil {
		return err
	}
	var err error
	l.isoTree, err = pathTableOrder(l.root, func(n *node) []*node { return n.isoKids },
		func(n *node) []byte { return n.isoName.ident() })
	return err
}

// isoRecords builds the records of directory d: ".", "..", the entries.
func (l *layout) isoRecords(d *node) ([]record, error) {
	dot := [][]byte{}
	if d == l.root {
		dot = append(dot, spEntry())
	}
	dot = append(dot, l.px(d), tfEntry(d.mtime))
	if d == l.root {
		dot = append(dot, erEntry())
	}
	recs := []record{
		{ident: identDot, target: d, su: splitSystemUse(dot, maxRecordLen-baseLen(identDot))},
		{ident: identDotDot, target: d.parent, su: splitSystemUse(
			[][]byte{l.px(d.parent), tfEntry(d.parent.mtime)}, maxRecordLen-baseLen(identDotDot))},
	}
	for _, c := range d.isoKids {
		ident := c.isoName.ident()
		su := [][]byte{l.px(c), tfEntry(c.mtime)}
		su = append(su, nmEntries(c.name)...)
		if c.isLink {
			sl, err := slEntries(c.link)
			if err != nil {
				return nil, fmt.Errorf("iso9660: %s: %w", c.path, err)
			}
			su = append(su, sl...)
		}
		recs = append(recs, record{ident: ident, target: c, su: splitSystemUse(su, maxRecordLen-baseLen(ident))})
	}
	return recs, nil
}

func (l *layout) px(n *node) []byte {
	typ := uint32(sIFREG)
	switch {
	case n.dir:
		typ = sIFDIR
	case n.isLink:
		typ = sIFLNK
	}
	return pxEntry(posixMode(n.mode, typ), n.nlink, n.uid, n.gid)
}

// pathTableOrder numbers the directories breadth first and builds the
// path table entries.
func pathTableOrder(root *node, kids func(*node) []*node, ident func(*node) []byte) (treeLayout, error) {
	t := treeLayout{dirs: []*node{root}}
	num := map[*node]int{root: 1}
	for i := 0; i < len(t.dirs); i++ {
		for _, c := range kids(t.dirs[i]) {
			if c.dir {
				t.dirs = append(t.dirs, c)
				num[c] = len(t.dirs)
			}
		}
	}
	if len(t.dirs) > math.MaxUint16 {
		return t, fmt.Errorf("iso9660: %d directories, the path table numbers at most %d", len(t.dirs), math.MaxUint16)
	}
	for _, d := range t.dirs {
		e := ptEntry{ident: identDot, parent: uint16(num[d.parent])}
		if d != root {
			e.ident = ident(d)
		}
		t.pt = append(t.pt, e)
	}
	t.ptSize = pathTableSize(t.pt)
	return t, nil
}

// allocate assigns every block: descriptors, path tables, directories,
// continuation areas, catalog, file data, appended ESP, GPT tail.
func (l *layout) allocate() error {
	next := int64(firstVDLBA + 1) // after the PVD
	take := func(n int64) uint32 {
		lba := next
		next += n
		return uint32(lba)
	}
	if l.catalog != nil {
		l.bootRecLBA = take(1)
	}
	if l.img.Joliet {
		l.svdLBA = take(1)
	}
	l.termLBA = take(1)

	for _, t := range []*treeLayout{&l.isoTree, &l.jolietTree} {
		if len(t.dirs) == 0 {
			continue
		}
		t.ptL = take(blocks(t.ptSize))
		t.ptM = take(blocks(t.ptSize))
	}
	for _, d := range l.isoTree.dirs {
		d.extent = take(d.isoSize / BlockSize)
	}

	// Continuation areas, packed in order without crossing blocks.
	l.ceLBA = uint32(next)
	off := int64(0)
	for _, d := range l.isoTree.dirs {
		for i := range d.isoRecs {
			for _, a := range d.isoRecs[i].su.areas {
				if off%BlockSize+int64(a.size) > BlockSize {
					off += BlockSize - off%BlockSize
				}
				a.lba = l.ceLBA + uint32(off/BlockSize)
				a.offset = uint32(off % BlockSize)
				off += int64(a.size)
			}
		}
	}
	l.ceBlocks = blocks(off)
	take(l.ceBlocks)

	for _, d := range l.jolietTree.dirs {
		d.jolExtent = take(d.jolSize / BlockSize)
	}
	for i, d := range l.isoTree.dirs {
		l.isoTree.pt[i].lba = d.extent
	}
	for i, d := range l.jolietTree.dirs {
		l.jolietTree.pt[i].lba = d.jolExtent
	}

	if l.catalog != nil {
		l.catalog.extent = take(1)
	}
	// File data: the boot images first, so that they sit near the start
	// of the medium, then every other file in tree order.
	seen := map[*node]bool{l.catalog: true}
	addFile := func(n *node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		if n.size == 0 {
			return // empty files record extent 0 and no data
		}
		n.extent = take(blocks(n.size))
		l.files = append(l.files, n)
	}
	addFile(l.biosBoot)
	addFile(l.efiBoot)
	if l.efiBoot != nil && l.gpt {
		// One zero block after the ESP partition, as libisofs leaves: the
		// "Gap1" partition then starts on no file, and tools that name a
		// partition after the file at its start do not call it a file.
		take(1)
	}
	var walk func(d *node)
	walk = func(d *node) {
		for _, c := range d.children {
			switch {
			case c.dir:
				walk(c)
			case !c.isLink:
				addFile(c)
			}
		}
	}
	walk(l.root)
	if l.efiBoot != nil {
		l.espLBA = l.efiBoot.extent
	}

	l.isoEndLBA = uint32(next)
	l.volumeBlocks = uint32(next)
	switch {
	case l.espAppended:
		l.espLBA = take(l.espBlocks)
		take(gptTailBlocks)
	case l.gpt:
		// The backup GPT is part of the volume, as libisofs counts it.
		take(gptTailBlocks)
		l.volumeBlocks = uint32(next)
	}
	l.totalBlocks = next
	if next > math.MaxUint32 {
		return fmt.Errorf("iso9660: image of %d blocks exceeds the 32-bit block addresses", next)
	}
	return nil
}

// derivedGUID is a disk GUID that changes with the image but not from one
// build of the same image to the next: the version 5 UUID of the volume ID,
// the volume time and a hash of every directory (names, metadata, sizes and
// block addresses of all files), without reading file contents again.
func (l *layout) derivedGUID() GUID {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", l.img.VolumeID, l.img.ModTime.UTC().Format(time.RFC3339Nano))
	for _, d := range l.isoTree.dirs {
		h.Write(dirBytes(d.isoRecs, d.isoSize))
	}
	return gpt.NewSHA1GUID(gpt.NamespaceURL, "kairos-iso9660:"+hex.EncodeToString(h.Sum(nil)))
}

// finishBoot patches the BIOS boot image now that addresses are known.
func (l *layout) finishBoot() error {
	if l.biosBoot != nil && l.biosBoot.data != nil {
		if err := patchBootImage(l.biosBoot.data, l.img.BIOSBoot, firstVDLBA, l.biosBoot.extent); err != nil {
			return fmt.Errorf("iso9660: BIOS boot image %s: %w", l.img.BIOSBoot.Path, err)
		}
	}
	if l.catalog == nil {
		return nil
	}
	var entries []catalogEntrySpec
	if b := l.img.BIOSBoot; b != nil {
		n := b.LoadSectors
		if n == 0 {
			n = defaultLoadSz
		}
		entries = append(entries, catalogEntrySpec{platform: platformX86, loadSectors: n, lba: l.biosBoot.extent})
	}
	if e := l.img.EFIBoot; e != nil {
		size := e.Size
		if l.efiBoot != nil {
			size = l.efiBoot.size
		}
		entries = append(entries, catalogEntrySpec{platform: platformEFI, loadSectors: efiLoadSectors(size), lba: l.espLBA})
	}
	l.catalog.data = bootCatalog(entries)
	return nil
}
