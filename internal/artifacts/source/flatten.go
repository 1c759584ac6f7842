package source

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kairos-io/kairos/internal/artifacts/squashfs"
)

// OCI whiteouts (image-spec layer.md): ".wh.<name>" deletes <name> from the
// layers below; ".wh..wh..opq" in a directory hides everything the layers
// below put there.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// flattener applies layers to an in-memory tree.
type flattener struct {
	nodes    map[string]*squashfs.Node      // "/" + clean path -> node
	children map[string]map[string]struct{} // dir path -> names
	layerOf  map[string]int                 // path -> layer that last wrote it
	spool    *os.File
	offset   int64
	nextLink uint64
}

// Flatten applies the image's layers in order and returns the resulting
// tree. Contents go to an unlinked temporary file in tmp, released by
// Tree.Close.
func Flatten(img v1.Image, tmp string) (*Tree, error) {
	spool, err := os.CreateTemp(tmp, "kairos-spool-")
	if err != nil {
		return nil, fmt.Errorf("creating the content spool: %w", err)
	}
	// Unlinked at once: nothing is left behind if the process dies.
	os.Remove(spool.Name())
	f := &flattener{
		nodes:    map[string]*squashfs.Node{"/": {Mode: fs.ModeDir | 0o755}},
		children: map[string]map[string]struct{}{"/": {}},
		layerOf:  map[string]int{},
		spool:    spool,
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
	return &Tree{Root: f.link("/"), close: spool.Close}, nil
}

func (f *flattener) apply(layer int, l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := path.Clean("/" + hdr.Name)
		dir, base := path.Split(p)
		dir = path.Clean(dir)
		switch {
		case p == "/":
			f.setMeta(f.nodes["/"], hdr)
			continue
		case base == whiteoutOpaque:
			for name := range f.children[dir] {
				if child := path.Join(dir, name); f.layerOf[child] < layer {
					f.remove(child)
				}
			}
			continue
		case strings.HasPrefix(base, whiteoutPrefix):
			f.remove(path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix)))
			continue
		}
		if err := f.add(layer, p, hdr, tr); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

func (f *flattener) add(layer int, p string, hdr *tar.Header, r io.Reader) error {
	f.mkdirAll(layer, path.Dir(p))
	old := f.nodes[p]
	if hdr.Typeflag == tar.TypeDir && old != nil && old.Mode.IsDir() {
		// A directory over a directory keeps its contents.
		f.setMeta(old, hdr)
		f.layerOf[p] = layer
		return nil
	}
	if old != nil {
		f.remove(p)
	}
	n := &squashfs.Node{}
	switch hdr.Typeflag {
	case tar.TypeLink:
		target := f.nodes[path.Clean("/"+hdr.Linkname)]
		if target == nil || target.Mode.IsDir() {
			return fmt.Errorf("hard link to %s, which is not a file of the image", hdr.Linkname)
		}
		if target.LinkID == 0 {
			f.nextLink++
			target.LinkID = f.nextLink
		}
		*n = *target
	case tar.TypeReg, tar.TypeRegA:
		f.setMeta(n, hdr)
		off := f.offset
		written, err := io.Copy(io.NewOffsetWriter(f.spool, off), r)
		if err != nil {
			return fmt.Errorf("spooling content: %w", err)
		}
		f.offset += written
		n.Size = written
		spool := f.spool
		n.Open = func() (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(spool, off, written)), nil
		}
	case tar.TypeDir, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		f.setMeta(n, hdr)
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	n.Name = path.Base(p)
	f.nodes[p] = n
	f.layerOf[p] = layer
	f.children[path.Dir(p)][n.Name] = struct{}{}
	if n.Mode.IsDir() {
		f.children[p] = map[string]struct{}{}
	}
	return nil
}

// setMeta copies a tar header's metadata.
func (f *flattener) setMeta(n *squashfs.Node, hdr *tar.Header) {
	n.Mode = hdr.FileInfo().Mode()
	n.UID, n.GID = uint32(hdr.Uid), uint32(hdr.Gid)
	n.ModTime = hdr.ModTime.Unix()
	n.Target = hdr.Linkname
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

// mkdirAll creates missing parents (layers may omit them) as 0755 root dirs.
func (f *flattener) mkdirAll(layer int, dir string) {
	if _, ok := f.nodes[dir]; ok {
		return
	}
	f.mkdirAll(layer, path.Dir(dir))
	n := &squashfs.Node{Name: path.Base(dir), Mode: fs.ModeDir | 0o755}
	f.nodes[dir] = n
	f.layerOf[dir] = layer
	f.children[dir] = map[string]struct{}{}
	f.children[path.Dir(dir)][n.Name] = struct{}{}
}

// remove deletes a path and everything below it.
func (f *flattener) remove(p string) {
	if _, ok := f.nodes[p]; !ok {
		return
	}
	for name := range f.children[p] {
		f.remove(path.Join(p, name))
	}
	delete(f.children, p)
	delete(f.nodes, p)
	delete(f.layerOf, p)
	delete(f.children[path.Dir(p)], path.Base(p))
}

// link fills in Children from the path index, sorted for determinism.
func (f *flattener) link(dir string) *squashfs.Node {
	n := f.nodes[dir]
	names := make([]string, 0, len(f.children[dir]))
	for name := range f.children[dir] {
		names = append(names, name)
	}
	sort.Strings(names)
	n.Children = n.Children[:0]
	for _, name := range names {
		p := path.Join(dir, name)
		child := f.nodes[p]
		if child.Mode.IsDir() {
			child = f.link(p)
		}
		n.Children = append(n.Children, child)
	}
	return n
}
