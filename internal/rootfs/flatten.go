package rootfs

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kairos-io/kairos/internal/fstree"
)

// OCI whiteouts (image-spec layer.md): ".wh.<name>" deletes <name> from the
// layers below; ".wh..wh..opq" in a directory hides everything the layers
// below put there.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Layers come from registries, so they are hostile input: the limits below
// keep a malformed or malicious layer from looping, recursing or filling
// the disk.
const (
	// maxSymlinkHops bounds the symlinks followed while resolving one
	// entry's parent directory, as the kernel's MAXSYMLINKS does, so that
	// loops (a -> b, b -> a) end in an error.
	maxSymlinkHops = 40
	// maxSymlinkTarget is the longest target followed: Linux cannot create
	// a longer one (PATH_MAX), and following a huge target 40 times per
	// entry would make resolution cost far more than the layer's size.
	maxSymlinkTarget = 4095
	// maxPath is the longest entry name taken: no Linux file system path
	// is longer (PATH_MAX), and a longer one would nest directories deep
	// enough to exhaust the stack of every tree walk after this one.
	maxPath = 4096

	// DefaultMaxSparseExpansion is FlattenOptions.MaxSparseExpansion's
	// default: 1 GiB of holes per image.
	DefaultMaxSparseExpansion = 1 << 30

	// Contents are spooled in chunks of spoolChunk bytes, and all-zero
	// blocks of spoolBlock bytes (the usual file system block) are left
	// as holes.
	spoolChunk = 1 << 20
	spoolBlock = 4096
)

var zeroBlock [spoolBlock]byte

// FlattenOptions are FlattenWith's options.
type FlattenOptions struct {
	// Tmp is where the spool file goes ("" = the system default).
	Tmp string
	// MaxSparseExpansion bounds how much sparse tar entries may add beyond
	// what their layers store: summed over the image, each file's logical
	// size minus the bytes read from its layer for it. GNU and PAX sparse
	// entries declare holes that archive/tar reads back as zeros, so a
	// 20 KiB layer can describe a 4 GiB file; the holes stay holes in the
	// spool, but whoever reads the tree (a squashfs writer, a disk
	// installer) would still read, and maybe store, every byte. Zero or
	// less means DefaultMaxSparseExpansion.
	MaxSparseExpansion int64
}

// dirent is the flattener's record of one path: its node, where it hangs,
// and which layer last wrote it. Directories own their children by name,
// so that resolution walks pointers (cost linear in the path, whatever
// the tree) and removing a subtree is a map delete.
type dirent struct {
	node     *fstree.Node
	parent   *dirent            // nil on the root
	children map[string]*dirent // non-nil exactly on directories
	layer    int
}

// flattener applies layers to an in-memory tree.
type flattener struct {
	root     *dirent
	spool    *os.File
	offset   int64 // end of the spool's content, holes included
	nextLink uint64
	buf      []byte

	maxExpansion int64
	expansion    int64 // holes so far, over all layers

	// opaqued are the directories the current layer already made opaque:
	// a second marker has nothing left to remove, and skipping it keeps a
	// layer of repeated markers from costing a walk of the tree each.
	opaqued map[*dirent]bool
}

// Flatten applies the image's layers in order and returns the resulting
// tree. Contents go to an unlinked temporary file in tmp, released by
// Tree.Close.
func Flatten(img v1.Image, tmp string) (*Tree, error) {
	return FlattenWith(img, FlattenOptions{Tmp: tmp})
}

// FlattenWith is Flatten with every option.
func FlattenWith(img v1.Image, o FlattenOptions) (*Tree, error) {
	spool, err := os.CreateTemp(o.Tmp, "kairos-spool-")
	if err != nil {
		return nil, fmt.Errorf("creating the content spool: %w", err)
	}
	// Unlinked at once: nothing is left behind if the process dies.
	os.Remove(spool.Name())
	f := &flattener{
		root:         &dirent{node: &fstree.Node{Mode: fs.ModeDir | 0o755}, children: map[string]*dirent{}},
		spool:        spool,
		buf:          make([]byte, spoolChunk),
		maxExpansion: o.MaxSparseExpansion,
	}
	if f.maxExpansion <= 0 {
		f.maxExpansion = DefaultMaxSparseExpansion
	}
	layers, err := img.Layers()
	if err != nil {
		spool.Close()
		return nil, fmt.Errorf("listing image layers: %w", err)
	}
	for i, l := range layers {
		if err := f.apply(i, l); err != nil {
			spool.Close()
			d, _ := l.Digest()
			return nil, fmt.Errorf("layer %d (%s): %w", i, d, err)
		}
	}
	// A file ending in a hole was never written up to its end: extend
	// the spool (with a hole) so that reads of that end find zeros, not
	// EOF.
	if err := spool.Truncate(f.offset); err != nil {
		spool.Close()
		return nil, fmt.Errorf("extending the content spool: %w", err)
	}
	return &Tree{Root: link(f.root), close: spool.Close}, nil
}

// countingReader counts the bytes read through it: what a tar entry really
// occupies in the layer, as opposed to its (sparse) logical size.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (f *flattener) apply(layer int, l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("opening the layer: %w", err)
	}
	defer rc.Close()
	cr := &countingReader{r: rc}
	tr := tar.NewReader(cr)
	f.opaqued = map[*dirent]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the layer: %w", err)
		}
		if err := f.entry(layer, hdr, tr, cr); err != nil {
			return fmt.Errorf("%q: %w", hdr.Name, err)
		}
	}
	// The tar end marker need not be the end of the stream (padding may
	// follow), and the layer's digest is verified when the stream hits
	// EOF: read it to the end, or a tampered layer goes unnoticed.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("reading the end of the layer: %w", err)
	}
	return nil
}

// entry applies one tar entry.
func (f *flattener) entry(layer int, hdr *tar.Header, r io.Reader, cr *countingReader) error {
	// archive/tar lets NUL through in some names (GNU.sparse.name); no
	// file system can store it, and the kernel would cut the name there.
	if strings.IndexByte(hdr.Name, 0) >= 0 || strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return errors.New("NUL in the entry's name or link target")
	}
	// Lexically, ".." stops at the root, as containerd's and the
	// kernel's resolution inside a chroot do; empty and "." components
	// go away.
	p := path.Clean("/" + hdr.Name)
	if len(p) > maxPath {
		return fmt.Errorf("a name of %d bytes (at most %d)", len(p), maxPath)
	}
	if p == "/" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("an entry of type %q for the root, which must be a directory", hdr.Typeflag)
		}
		setMeta(f.root.node, hdr)
		return nil
	}
	dir, base := path.Split(p)
	switch {
	case base == whiteoutOpaque:
		d, err := f.resolveDir(layer, dir, false)
		if err != nil || d == nil {
			return err
		}
		if !f.opaqued[d] {
			f.opaqued[d] = true
			purge(d, layer)
		}
		return nil
	case strings.HasPrefix(base, whiteoutPrefix):
		// The target is a name inside the whiteout's directory: "." and
		// ".." would remove that directory or its parent (all of /usr
		// for usr/sub/.wh...), "" the directory itself.
		name := strings.TrimPrefix(base, whiteoutPrefix)
		if name == "" || name == "." || name == ".." {
			return fmt.Errorf("whiteout of %q: not a name in the whiteout's directory", name)
		}
		d, err := f.resolveDir(layer, dir, false)
		if err != nil || d == nil {
			return err // nothing there to white out
		}
		delete(d.children, name)
		return nil
	}
	d, err := f.resolveDir(layer, dir, true)
	if err != nil {
		return err
	}
	return f.add(layer, d, base, hdr, r, cr)
}

// resolveDir finds directory dir (an absolute path from a layer) in the
// tree, following symlinks the way containerd's applier and the kernel in
// a chroot at the image root do: a relative target starts from the
// symlink's directory, an absolute one from the root, and ".." never
// climbs above the root, so resolution cannot leave the tree. Real images
// rely on this (a lower layer's lib -> usr/lib, then an entry under lib/).
// Missing directories are created when create is set, since layers may
// omit parents; otherwise a missing one yields nil. A parent that is
// neither a directory nor a symlink is an error: nothing can go under it.
func (f *flattener) resolveDir(layer int, dir string, create bool) (*dirent, error) {
	// Components still to walk, the next one last.
	todo := pushPath(nil, dir)
	cur := f.root
	hops := 0
	for len(todo) > 0 {
		name := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		switch name {
		case "", ".":
			continue
		case "..":
			if cur.parent != nil {
				cur = cur.parent
			}
			continue
		}
		next := cur.children[name]
		if next == nil {
			if !create {
				return nil, nil
			}
			next = &dirent{
				node:     &fstree.Node{Name: name, Mode: fs.ModeDir | 0o755},
				parent:   cur,
				children: map[string]*dirent{},
				layer:    layer,
			}
			cur.children[name] = next
		}
		switch next.node.Mode.Type() {
		case fs.ModeDir:
			cur = next
		case fs.ModeSymlink:
			hops++
			target := next.node.Target
			switch {
			case hops > maxSymlinkHops:
				return nil, errors.New("too many levels of symbolic links")
			case target == "":
				return nil, fmt.Errorf("%s: symlink with an empty target", pathOf(next))
			case len(target) > maxSymlinkTarget:
				return nil, fmt.Errorf("%s: symlink target longer than %d bytes", pathOf(next), maxSymlinkTarget)
			}
			if path.IsAbs(target) {
				cur = f.root
			}
			todo = pushPath(todo, target)
		default:
			return nil, fmt.Errorf("%s is not a directory", pathOf(next))
		}
	}
	return cur, nil
}

// pushPath pushes p's components onto a stack whose top is its end.
func pushPath(stack []string, p string) []string {
	parts := strings.Split(p, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		stack = append(stack, parts[i])
	}
	return stack
}

// pathOf returns a dirent's path in the tree, for error messages.
func pathOf(d *dirent) string {
	var parts []string
	for ; d.parent != nil; d = d.parent {
		parts = append(parts, d.node.Name)
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return "/" + strings.Join(parts, "/")
}

// purge applies an opaque whiteout in layer to d: what lower layers put
// anywhere under d goes; what layer itself wrote there stays, with the
// directories leading to it.
func purge(d *dirent, layer int) {
	for name, c := range d.children {
		if c.children != nil {
			purge(c, layer)
		}
		if c.layer < layer && len(c.children) == 0 {
			delete(d.children, name)
		}
	}
}

// add puts the entry hdr at base in directory d, replacing what was there
// (an entry's own name is never followed: a directory over a symlink
// replaces the symlink, as in containerd and docker).
func (f *flattener) add(layer int, d *dirent, base string, hdr *tar.Header, r io.Reader, cr *countingReader) error {
	old := d.children[base]
	if hdr.Typeflag == tar.TypeDir && old != nil && old.children != nil {
		// A directory over a directory keeps its contents.
		setMeta(old.node, hdr)
		old.layer = layer
		return nil
	}
	n := &fstree.Node{}
	switch hdr.Typeflag {
	case tar.TypeLink:
		target, err := f.lookup(layer, hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link to %s: %w", hdr.Linkname, err)
		}
		if target == nil || target.children != nil {
			return fmt.Errorf("hard link to %s, which is not a file of the image", hdr.Linkname)
		}
		if target.node.LinkID == 0 {
			f.nextLink++
			target.node.LinkID = f.nextLink
		}
		*n = *target.node
	case tar.TypeReg, tar.TypeGNUSparse:
		setMeta(n, hdr)
		if err := f.spoolContent(n, hdr, r, cr); err != nil {
			return err
		}
	case tar.TypeDir, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		setMeta(n, hdr)
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	n.Name = base
	e := &dirent{node: n, parent: d, layer: layer}
	if n.Mode.IsDir() {
		e.children = map[string]*dirent{}
	}
	d.children[base] = e
	return nil
}

// lookup finds a hard link's target: its directory resolved like an
// entry's (without creating anything), its own name not followed, since
// link(2) links a symlink itself.
func (f *flattener) lookup(layer int, name string) (*dirent, error) {
	p := path.Clean("/" + name)
	if p == "/" {
		return f.root, nil
	}
	dir, base := path.Split(p)
	d, err := f.resolveDir(layer, dir, false)
	if err != nil || d == nil {
		return nil, err
	}
	return d.children[base], nil
}

// spoolContent copies a file's content to the spool and points n at it.
// All-zero blocks are skipped, not written, so the spool keeps the holes
// of sparse entries (and of files that are mostly zeros) as holes; the
// spool is read through io.SectionReader, which returns them as zeros.
// What the entry adds beyond the bytes it takes in the layer counts
// against the image's MaxSparseExpansion, checked as it grows so that a
// file of exabytes of holes fails at the limit rather than after reading
// them.
func (f *flattener) spoolContent(n *fstree.Node, hdr *tar.Header, r io.Reader, cr *countingReader) error {
	start, consumedAt := f.offset, cr.n
	for {
		// Chunks end on spool block boundaries, so that every full
		// block is one file system block and a zero one a real hole.
		chunk, err := fill(r, f.buf[:spoolChunk-int(f.offset%spoolBlock)])
		if werr := f.writeData(f.offset, chunk); werr != nil {
			return fmt.Errorf("spooling content: %w", werr)
		}
		f.offset += int64(len(chunk))
		grown, consumed := f.offset-start, cr.n-consumedAt
		if f.expansion+grown-consumed > f.maxExpansion {
			return fmt.Errorf("sparse file of %d bytes: after reading %d bytes of it from the layer it had grown to %d bytes, "+
				"over the image's limit of %d bytes of holes (MaxSparseExpansion)",
				hdr.Size, consumed, grown, f.maxExpansion)
		}
		if err == io.EOF {
			f.expansion += grown - consumed
			break
		}
		if err != nil {
			return fmt.Errorf("reading content: %w", err)
		}
	}
	size, off, spool := f.offset-start, start, f.spool
	n.Size = size
	n.Open = func() (io.ReadCloser, error) {
		return spoolReader{io.NewSectionReader(spool, off, size)}, nil
	}
	return nil
}

// spoolReader is a file's content in the spool. It can seek, so a reader
// can skip what it does not need (such as a sparse file's holes).
type spoolReader struct{ *io.SectionReader }

func (spoolReader) Close() error { return nil }

// fill reads until buf is full or r fails; io.EOF means the content ended
// (possibly with data in the result), any other error is a failure.
func fill(r io.Reader, buf []byte) ([]byte, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return buf[:n], err
		}
	}
	return buf, nil
}

// writeData writes data at off in the spool, leaving out the all-zero
// spool blocks: the spool only grows, so what is not written reads back
// as zeros.
func (f *flattener) writeData(off int64, data []byte) error {
	for len(data) > 0 {
		// The blocks up to the next non-zero one are skipped...
		n := min(len(data), spoolBlock-int(off%spoolBlock))
		if bytes.Equal(data[:n], zeroBlock[:n]) {
			off, data = off+int64(n), data[n:]
			continue
		}
		// ...and a run of non-zero ones is written at once.
		for n < len(data) {
			m := min(len(data)-n, spoolBlock)
			if bytes.Equal(data[n:n+m], zeroBlock[:m]) {
				break
			}
			n += m
		}
		if _, err := f.spool.WriteAt(data[:n], off); err != nil {
			return err
		}
		off, data = off+int64(n), data[n:]
	}
	return nil
}

// setMeta copies a tar header's metadata. The file type comes from the
// type flag alone: archive/tar's FileInfo also honours type bits in the
// mode field (c_ISDIR on a regular file entry), which would make a node
// that claims two types, such as a "directory" with content.
func setMeta(n *fstree.Node, hdr *tar.Header) {
	n.Mode = fileType(hdr.Typeflag) | hdr.FileInfo().Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
	n.UID, n.GID = uint32(hdr.Uid), uint32(hdr.Gid)
	n.ModTime = hdr.ModTime.Unix()
	n.Target = ""
	if hdr.Typeflag == tar.TypeSymlink {
		n.Target = hdr.Linkname
	}
	n.DevMajor, n.DevMinor = uint32(hdr.Devmajor), uint32(hdr.Devminor)
	n.Xattrs = nil
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if n.Xattrs == nil {
				n.Xattrs = map[string][]byte{}
			}
			n.Xattrs[name] = []byte(v)
		}
	}
}

// fileType maps a tar type flag to the node's type bits (0: regular file).
func fileType(typeflag byte) fs.FileMode {
	switch typeflag {
	case tar.TypeDir:
		return fs.ModeDir
	case tar.TypeSymlink:
		return fs.ModeSymlink
	case tar.TypeChar:
		return fs.ModeDevice | fs.ModeCharDevice
	case tar.TypeBlock:
		return fs.ModeDevice
	case tar.TypeFifo:
		return fs.ModeNamedPipe
	}
	return 0
}

// link fills in Children from the dirents, sorted for determinism.
func link(d *dirent) *fstree.Node {
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	sort.Strings(names)
	d.node.Children = make([]*fstree.Node, 0, len(names))
	for _, name := range names {
		c := d.children[name]
		if c.children != nil {
			link(c)
		}
		d.node.Children = append(d.node.Children, c.node)
	}
	return d.node
}
