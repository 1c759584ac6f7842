package fat

import (
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode/utf16"

	"github.com/kairos-io/kairos/internal/fstree"
)

// maxDirEntries is the FAT limit on entries per directory (a 2 MiB directory).
const maxDirEntries = 65536

// node is a file or directory of the tree with its place on disk.
type node struct {
	name     string // long name; "" for the root
	path     string // for error messages
	short    [11]byte
	lfn      bool                          // the name needs long-name entries
	open     func() (io.ReadCloser, error) // a file's content
	children []*node                       // directories only, sorted by name
	isDir    bool
	size     int64  // file bytes, or directory entries * 32
	first    uint32 // first cluster; 0 for an empty file and the FAT16 root
	clusters int64
}

// plan is the complete allocation of a tree: every cluster assigned, the FAT
// built. It is computed before anything is written, so a tree that does not
// fit fails without touching the target.
type plan struct {
	g     geometry
	root  *node
	fat   *table
	label bool  // the root holds a volume label entry
	used  int64 // clusters allocated
}

func newPlan(g geometry, root *fstree.Node, label bool) (*plan, error) {
	if root == nil {
		root = &fstree.Node{Mode: fs.ModeDir}
	}
	if !root.Mode.IsDir() {
		return nil, fmt.Errorf("the root is not a directory")
	}
	p := &plan{g: g, label: label}
	var err error
	if p.root, err = buildNode(root, "", ""); err != nil {
		return nil, err
	}
	if err := p.size(p.root); err != nil {
		return nil, err
	}

	next := int64(2)
	alloc := func(n *node) {
		if n.clusters > 0 {
			n.first = uint32(next)
			next += n.clusters
		}
	}
	var walk func(d *node)
	walk = func(d *node) {
		// A directory's files follow it, then its subdirectories, each
		// followed by its own content: contiguous, deterministic runs.
		for _, c := range d.children {
			if !c.isDir {
				alloc(c)
			}
		}
		for _, c := range d.children {
			if c.isDir {
				alloc(c)
				walk(c)
			}
		}
	}
	if g.fatType == FAT32 {
		alloc(p.root) // lands on cluster 2, the BPB's root cluster
	}
	walk(p.root)
	p.used = next - 2

	if p.used > g.clusters {
		cs := g.clusterSize()
		return nil, fmt.Errorf("tree does not fit: it needs %s (%d clusters of %d bytes), the %s FAT%d file system has %s (%d clusters)",
			human(p.used*cs), p.used, cs, human(g.totalSectors*sectorSize), g.fatType, human(g.clusters*cs), g.clusters)
	}
	if g.fatType == FAT32 && p.root.first != fat32RootCluster {
		return nil, fmt.Errorf("internal error: FAT32 root at cluster %d", p.root.first)
	}

	p.fat = newTable(g)
	p.each(p.root, func(n *node) {
		if n.first != 0 {
			p.fat.chain(n.first, n.clusters)
		}
	})
	return p, nil
}

// buildNode validates a directory and gives its entries their short names.
// Only directories and regular files are allowed; node metadata (modes,
// owners, times) is not recorded (every entry gets Options.ModTime).
func buildNode(d *fstree.Node, name, path string) (*node, error) {
	n := &node{name: name, path: path, isDir: true}
	entries, err := fstree.Sorted(d, 0) // by name, bytewise
	if err != nil {
		return nil, fmt.Errorf("%s/: %w", path, err)
	}
	seen := make(map[string]string, len(entries))
	for _, e := range entries {
		p := path + "/" + e.Name
		if err := validateName(e.Name); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		folded := strings.ToUpper(e.Name)
		if prev, dup := seen[folded]; dup {
			return nil, fmt.Errorf("%s/: entries %q and %q have the same name to FAT, whose names are case-insensitive", path, prev, e.Name)
		}
		seen[folded] = e.Name
		if t := e.Mode.Type(); t != fs.ModeDir && !t.IsRegular() {
			return nil, fmt.Errorf("%s: %v is not a regular file or directory, which is all FAT holds", p, t)
		}
	}

	// Exact 8.3 names first, so that generated ~N names avoid them.
	names := newShortNamer()
	shorts := make([][11]byte, len(entries))
	exact := make([]bool, len(entries))
	for i, e := range entries {
		if shorts[i], exact[i] = exactShortName(e.Name); exact[i] {
			names.reserve(shorts[i])
		}
	}
	for i, e := range entries {
		p := path + "/" + e.Name
		var c *node
		if e.Mode.IsDir() {
			var err error
			if c, err = buildNode(e, e.Name, p); err != nil {
				return nil, err
			}
		} else {
			c = &node{name: e.Name, path: p, open: e.Open, size: e.Size}
			if c.size < 0 || c.size > 0xFFFFFFFF {
				return nil, fmt.Errorf("%s: size %d is outside FAT's 0 to 4 GiB - 1", p, c.size)
			}
			if c.open == nil && c.size != 0 {
				return nil, fmt.Errorf("%s: a file of %d bytes has no Open function", p, c.size)
			}
		}
		if exact[i] {
			c.short = shorts[i]
		} else {
			short, err := names.generate(e.Name)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			c.short, c.lfn = short, true
		}
		n.children = append(n.children, c)
	}
	return n, nil
}

// size computes directory sizes and cluster counts, bottom-up.
func (p *plan) size(d *node) error {
	count := int64(2) // "." and ".."
	if d == p.root {
		count = 0
		if p.label {
			count = 1
		}
	}
	cs := p.g.clusterSize()
	for _, c := range d.children {
		count += 1 + lfnCount(c)
		if c.isDir {
			if err := p.size(c); err != nil {
				return err
			}
		} else {
			c.clusters = (c.size + cs - 1) / cs
		}
	}
	if count > maxDirEntries {
		return fmt.Errorf("%s/: %d directory entries, FAT allows %d", d.path, count, maxDirEntries)
	}
	d.size = count * dirEntrySize
	switch {
	case d == p.root && p.g.fatType == FAT16:
		if count > p.g.rootEntries {
			return fmt.Errorf("root directory needs %d entries, the FAT16 root holds %d: use subdirectories or FAT32", count, p.g.rootEntries)
		}
	default:
		d.clusters = max((d.size+cs-1)/cs, 1) // even an empty directory has "." and ".."
	}
	return nil
}

func lfnCount(n *node) int64 {
	if !n.lfn {
		return 0
	}
	return int64((len(utf16.Encode([]rune(n.name))) + lfnCharsPerEntry - 1) / lfnCharsPerEntry)
}

// each visits every node in allocation order.
func (p *plan) each(n *node, f func(*node)) {
	f(n)
	for _, c := range n.children {
		p.each(c, f)
	}
}

// dirBytes encodes directory d: for the root the volume label, otherwise
// "." and ".."; then, per entry, its long-name entries and its short entry.
// The rest stays zero, which marks the end of the directory.
func (p *plan) dirBytes(d, parent *node, label [11]byte, ts dosTime) []byte {
	size := d.clusters * p.g.clusterSize()
	if d == p.root && p.g.fatType == FAT16 {
		size = p.g.rootEntries * dirEntrySize
	}
	b := make([]byte, size)
	off := 0
	put := func(e dirEntry) {
		e.marshal(b[off:])
		off += dirEntrySize
	}
	if d == p.root {
		if p.label {
			put(dirEntry{name: label, attr: attrVolumeID, time: ts})
		}
	} else {
		put(dirEntry{name: pack(".", ""), attr: attrDirectory, cluster: d.first, time: ts})
		// ".." of a first-level directory points at cluster 0, even on
		// FAT32 where the root has a real cluster (fatgen103).
		up := parent.first
		if parent == p.root {
			up = 0
		}
		put(dirEntry{name: pack("..", ""), attr: attrDirectory, cluster: up, time: ts})
	}
	for _, c := range d.children {
		if c.lfn {
			for _, l := range lfnEntries(c.name, c.short) {
				copy(b[off:], l[:])
				off += dirEntrySize
			}
		}
		e := dirEntry{name: c.short, cluster: c.first, time: ts}
		if c.isDir {
			e.attr = attrDirectory
		} else {
			e.attr = attrArchive
			e.size = uint32(c.size)
		}
		put(e)
	}
	return b
}

// human formats a byte count for error messages.
func human(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", (n+1023)/1024)
	}
}
