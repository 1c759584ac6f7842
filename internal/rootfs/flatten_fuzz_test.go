package rootfs

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kairos-io/kairos/internal/fstree"
)

// The fuzz input is a list of operations whose names are drawn from small
// alphabets, so that mutations keep hitting the same few paths (collisions
// between whiteouts, symlinks, links and files are what breaks a
// flattener) rather than inventing names nothing else refers to.
var (
	fuzzNames = []string{"a", "b", "usr", "lib", "etc", "sub", "", ".", "..",
		".wh.", ".wh.a", ".wh.b", ".wh.lib", ".wh.usr", ".wh..", ".wh...", ".wh..wh..opq", "x\x00y"}
	fuzzTargets = []string{"a", "b", "usr/lib", "/usr/lib", "..", "../..", "/", "/sentinel",
		"a/b", "lib/a", "../../../usr", "", "/.wh..", "sub/../a", "usr/lib/a"}
	fuzzModes = []int64{0o40755, 0o120777, 0o20644, 0o60644, 0o10644, 0o140755, 0o4755}
)

const (
	opLayer    = iota // start the next layer
	opDir             // directory
	opFile            // regular file, arg picks the size
	opSymlink         // arg picks the target in fuzzTargets
	opHardlink        // arg picks the target in fuzzTargets
	opChar            // character device
	opFifo            // fifo
	opSparse          // PAX sparse file, arg picks the size (name may hold a NUL)
	opOddMode         // regular file with file-type bits in its mode
	opCount
)

const fuzzMaxOps = 48

// fuzzExpansion is the sparse limit of the fuzz runs: the largest sparse
// file (2 MiB) goes over it, smaller ones add up to it.
const fuzzExpansion = 1 << 20

type fuzzOp struct {
	kind byte
	name string
	arg  byte
}

// decodeOps reads ops: a kind byte, then (except for opLayer) a shape byte
// (1-4 components, leading and trailing slash), a byte per component and
// an argument byte. Missing bytes read as zero.
func decodeOps(data []byte) []fuzzOp {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	var ops []fuzzOp
	for len(data) > 0 && len(ops) < fuzzMaxOps {
		op := fuzzOp{kind: next() % opCount}
		if op.kind != opLayer {
			shape := next()
			parts := make([]string, 1+shape%4)
			for i := range parts {
				parts[i] = fuzzNames[int(next())%len(fuzzNames)]
			}
			op.name = strings.Join(parts, "/")
			if shape&4 != 0 {
				op.name = "/" + op.name
			}
			if shape&8 != 0 {
				op.name += "/"
			}
			op.arg = next()
		}
		ops = append(ops, op)
	}
	return ops
}

// encodeOps is decodeOps' inverse, to write the seeds readably. Names are
// split on "/" and each component must be in fuzzNames; symlink and hard
// link targets must be in fuzzTargets.
func encodeOps(ops ...fuzzOp) []byte {
	index := func(list []string, s string) byte {
		for i, v := range list {
			if v == s {
				return byte(i)
			}
		}
		panic(fmt.Sprintf("%q is not in the fuzz alphabet", s))
	}
	var out []byte
	for _, op := range ops {
		out = append(out, op.kind)
		if op.kind == opLayer {
			continue
		}
		name := op.name
		var shape byte
		if strings.HasPrefix(name, "/") {
			shape |= 4
			name = name[1:]
		}
		if strings.HasSuffix(name, "/") {
			shape |= 8
			name = name[:len(name)-1]
		}
		parts := strings.Split(name, "/")
		if len(parts) > 4 {
			panic(name + ": more than 4 components")
		}
		shape |= byte(len(parts) - 1)
		out = append(out, shape)
		for _, p := range parts {
			out = append(out, index(fuzzNames, p))
		}
		out = append(out, op.arg)
	}
	return out
}

// seed ops, by kind.
func sDir(name string) fuzzOp { return fuzzOp{kind: opDir, name: name} }
func sFile(name string, size byte) fuzzOp {
	return fuzzOp{kind: opFile, name: name, arg: size}
}
func sLink(kind byte, name, target string) fuzzOp {
	for i, v := range fuzzTargets {
		if v == target {
			return fuzzOp{kind: kind, name: name, arg: byte(i)}
		}
	}
	panic(target + " is not in fuzzTargets")
}

var sLayer = fuzzOp{kind: opLayer}

// buildFuzzLayers turns ops into layers. The first layer always starts with
// /sentinel/keep, which no op can name: only an opaque whiteout may take it
// away, anything else that removes it deleted outside its own directory.
func buildFuzzLayers(t *testing.T, ops []fuzzOp) []v1.Layer {
	var layers []v1.Layer
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(h tar.Header, data string) {
		h.Size = int64(len(data))
		h.ModTime = time.Unix(1700000000, 0)
		h.Format = tar.FormatPAX
		if tw.WriteHeader(&h) != nil {
			return // a name the writer refuses (NUL, trailing slash): skip it
		}
		if _, err := io.WriteString(tw, data); err != nil {
			t.Fatal(err)
		}
	}
	end := func() {
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, layerOf(t, bytes.Clone(buf.Bytes())))
		buf.Reset()
		tw = tar.NewWriter(&buf)
	}
	write(tar.Header{Name: "sentinel/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	write(tar.Header{Name: "sentinel/keep", Typeflag: tar.TypeReg, Mode: 0o644}, "keep")
	for _, op := range ops {
		target := fuzzTargets[int(op.arg)%len(fuzzTargets)]
		switch op.kind {
		case opLayer:
			end()
		case opDir:
			write(tar.Header{Name: op.name, Typeflag: tar.TypeDir, Mode: 0o755}, "")
		case opFile:
			size := []int{0, 1, 100, 5000}[op.arg%4]
			write(tar.Header{Name: op.name, Typeflag: tar.TypeReg, Mode: 0o644}, strings.Repeat(string(rune('a'+op.arg%26)), size))
		case opSymlink:
			write(tar.Header{Name: op.name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}, "")
		case opHardlink:
			write(tar.Header{Name: op.name, Typeflag: tar.TypeLink, Linkname: target}, "")
		case opChar:
			write(tar.Header{Name: op.name, Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}, "")
		case opFifo:
			write(tar.Header{Name: op.name, Typeflag: tar.TypeFifo, Mode: 0o644}, "")
		case opSparse:
			// Written by hand between the Writer's entries: Flush pads
			// the previous one, and the Writer keeps no other state.
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
			size := []int64{0, 4096, 300 << 10, 2 << 20}[op.arg%4]
			var r rawTar
			r.paxSparse(op.name, size, []sparseFrag{{size / 2, "data"[:min(4, size-size/2)]}})
			buf.Write(r.buf.Bytes())
		case opOddMode:
			write(tar.Header{Name: op.name, Typeflag: tar.TypeReg, Mode: fuzzModes[int(op.arg)%len(fuzzModes)]}, "odd")
		}
	}
	end()
	return layers
}

// checkWellFormed checks what the squashfs writer relies on: a directory
// root; every node reached once; names non-empty, not "." or "..", without
// '/' or NUL and unique in their directory; children only on directories;
// one file type per node; files yielding exactly Size bytes.
func checkWellFormed(t *testing.T, root *fstree.Node) {
	if root == nil || !root.Mode.IsDir() {
		t.Fatalf("the root is not a directory: %+v", root)
	}
	seen := map[*fstree.Node]bool{}
	var walk func(n *fstree.Node, p string)
	walk = func(n *fstree.Node, p string) {
		if seen[n] {
			t.Fatalf("%s: node reached twice", p)
		}
		seen[n] = true
		switch n.Mode.Type() {
		case fs.ModeDir, 0, fs.ModeSymlink, fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice, fs.ModeNamedPipe:
		default:
			t.Fatalf("%s: mode %v is not one file type", p, n.Mode)
		}
		if !n.Mode.IsDir() && len(n.Children) > 0 {
			t.Fatalf("%s: a %v with children", p, n.Mode)
		}
		if n.Mode.IsRegular() {
			if n.Open == nil {
				if n.Size != 0 {
					t.Fatalf("%s: %d bytes and no Open", p, n.Size)
				}
			} else {
				rc, err := n.Open()
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				got, err := io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil || got != n.Size {
					t.Fatalf("%s: read %d bytes (%v), size %d", p, got, err, n.Size)
				}
			}
		}
		names := map[string]bool{}
		for _, c := range n.Children {
			if c == nil {
				t.Fatalf("%s: nil child", p)
			}
			if c.Name == "" || c.Name == "." || c.Name == ".." || strings.ContainsAny(c.Name, "/\x00") {
				t.Fatalf("%s: child named %q", p, c.Name)
			}
			if names[c.Name] {
				t.Fatalf("%s: two children named %q", p, c.Name)
			}
			names[c.Name] = true
			walk(c, strings.TrimSuffix(p, "/")+"/"+c.Name)
		}
	}
	walk(root, "/")
}

// FuzzFlatten: whatever the layers, Flatten returns an error or a well
// formed tree, and never deletes outside a whiteout's own directory.
func FuzzFlatten(f *testing.F) {
	seeds := [][]fuzzOp{
		// A file under a symlinked parent, relative and absolute.
		{sLink(opSymlink, "lib", "usr/lib"), sLink(opSymlink, "a", "/usr/lib"), sLayer, sFile("lib/a", 1), sFile("a/b", 2)},
		// A file under a regular file, and under a device.
		{sFile("a", 1), sLayer, sFile("a/b", 1)},
		{{kind: opChar, name: "b"}, sFile("b/a", 1)},
		// "/.wh.." alone, and followed by another entry.
		{sFile("/.wh..", 0)},
		{sFile("a", 1), sLayer, sFile("/.wh..", 0), sFile("b", 1)},
		// Whiteouts of "..", "." and "" below the root.
		{sFile("usr/sub/a", 1), sFile("usr/b", 1), sLayer, sFile("usr/sub/.wh...", 0)},
		{sFile("etc/a", 1), sLayer, sFile("etc/.wh..", 0), sFile("etc/.wh.", 0)},
		// Whiteouts through symlinks, into /sentinel.
		{sLink(opSymlink, "a", "/sentinel"), sLayer, sFile("a/.wh..", 0)},
		{sLink(opSymlink, "a", "/sentinel"), sFile("a/b/a", 1), sLayer, sFile("a/b/.wh...", 0)},
		{sLink(opSymlink, "a", "/sentinel"), sFile("a/a", 1), sLayer, sFile("a/.wh.a", 0)},
		// Opaque whiteouts, with new content before and after.
		{sFile("a/b", 1), sFile("a/sub/b", 1), sLayer, sFile("a/sub/a", 2), sFile("a/.wh..wh..opq", 0), sFile("a/a", 3)},
		// Symlink loops.
		{sLink(opSymlink, "a", "b"), sLink(opSymlink, "b", "a"), sFile("a/a", 1), sLink(opSymlink, "lib", "lib/a"), sFile("lib/b", 1)},
		// Hard links: missing target, directory target, through a symlink.
		{sLink(opHardlink, "b", "a")},
		{sDir("a/"), sLink(opHardlink, "b", "a")},
		{sFile("usr/lib/a", 2), sLink(opSymlink, "lib", "usr/lib"), sLayer, sLink(opHardlink, "b", "lib/a"), sLink(opHardlink, "a", "usr/lib/a")},
		// A directory over a file and over a symlink, a file over a directory.
		{sFile("a", 1), sLink(opSymlink, "b", "usr/lib"), sFile("usr/a/b", 1), sLayer, sDir("a/"), sDir("b/"), sFile("usr/a", 2)},
		// The root as a file, a fifo, a directory; names with empty and dot parts.
		{sFile(".", 1)},
		{{kind: opFifo, name: "/"}, sDir("./"), sFile("a//./b", 1), sFile("../../a", 2)},
		// Type bits in the mode of regular files.
		{{kind: opOddMode, name: "a", arg: 0}, {kind: opOddMode, name: "b", arg: 1}, sFile("a/b", 1)},
		// Sparse files: under the limit, over it, a NUL in the name.
		{{kind: opSparse, name: "a", arg: 1}, {kind: opSparse, name: "b", arg: 2}},
		{{kind: opSparse, name: "a", arg: 3}},
		{{kind: opSparse, name: "a", arg: 2}, {kind: opSparse, name: "b", arg: 2}, {kind: opSparse, name: "usr", arg: 2}, {kind: opSparse, name: "lib", arg: 2}},
		{{kind: opSparse, name: "x\x00y", arg: 1}},
	}
	for _, s := range seeds {
		f.Add(encodeOps(s...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ops := decodeOps(data)
		img := imageOf(t, buildFuzzLayers(t, ops)...)
		tree, err := FlattenWith(img, FlattenOptions{Tmp: t.TempDir(), MaxSparseExpansion: fuzzExpansion})
		if err != nil {
			return
		}
		defer tree.Close()
		checkWellFormed(t, tree.Root)
		for _, op := range ops {
			if strings.Contains(op.name, ".wh..wh..opq") {
				return
			}
		}
		var keep *fstree.Node
		for _, c := range tree.Root.Children {
			if c.Name != "sentinel" || !c.Mode.IsDir() {
				continue
			}
			for _, k := range c.Children {
				if k.Name == "keep" {
					keep = k
				}
			}
		}
		if keep == nil || !keep.Mode.IsRegular() || keep.Size != 4 {
			var lines []string
			treeLines(t, tree.Root, "/", &lines)
			t.Fatalf("/sentinel/keep is gone or changed:\n%s", strings.Join(lines, "\n"))
		}
	})
}
