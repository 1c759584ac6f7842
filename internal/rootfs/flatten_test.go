package rootfs

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kairos-io/kairos/internal/fstree"
)

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}

// layerOf wraps tar bytes as an image layer.
func layerOf(t testing.TB, data []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// treeLines renders a tree as one "path type" line per node, depth first:
// "d" directory, "f:<content>" file, "l:<target>" symlink, "c", "b", "p".
func treeLines(t testing.TB, n *fstree.Node, p string, out *[]string) {
	t.Helper()
	var kind string
	switch n.Mode.Type() {
	case fs.ModeDir:
		kind = "d"
	case 0:
		var data []byte
		if n.Open != nil {
			rc, err := n.Open()
			if err != nil {
				t.Fatal(err)
			}
			data, err = io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		kind = "f:" + string(data)
	case fs.ModeSymlink:
		kind = "l:" + n.Target
	case fs.ModeDevice | fs.ModeCharDevice:
		kind = "c"
	case fs.ModeDevice:
		kind = "b"
	case fs.ModeNamedPipe:
		kind = "p"
	default:
		kind = "?" + n.Mode.String()
	}
	*out = append(*out, p+" "+kind)
	for _, c := range n.Children {
		treeLines(t, c, strings.TrimSuffix(p, "/")+"/"+c.Name, out)
	}
}

// TestFlattenHostileLayers feeds layers that a registry could serve to the
// node agent: each must either flatten to the tree an OCI runtime would
// build or fail with an error naming the layer and the entry; none may
// panic, recurse without end, or delete outside the whiteout's directory.
func TestFlattenHostileLayers(t *testing.T) {
	oddMode := file("odd", "o", 0o644)
	oddMode.hdr.Mode = 0o40755 // c_ISDIR in the mode of a regular file entry
	nulName := rawTar{}
	nulName.paxSparse("a\x00b", 1, []sparseFrag{{0, "x"}})

	for _, tc := range []struct {
		name    string
		layers  [][]entry
		raw     [][]byte // extra layers, hand-written tar
		want    []string // the tree, when it must flatten
		wantErr []string // what the error must say, when it must not
	}{{
		// Real images have lib -> usr/lib at the top and write under
		// usr/lib; an entry under lib/ lands where containerd and the
		// kernel would put it: in usr/lib.
		name: "file under a symlinked parent",
		layers: [][]entry{
			{dir("usr/"), dir("usr/lib/"), symlink("lib", "usr/lib"), symlink("lib64", "/lib")},
			{file("lib/x", "x", 0o644), file("lib64/y", "y", 0o644)},
		},
		want: []string{"/ d", "/lib l:usr/lib", "/lib64 l:/lib", "/usr d", "/usr/lib d", "/usr/lib/x f:x", "/usr/lib/y f:y"},
	}, {
		name: "symlinked parent that climbs above the root stays inside",
		layers: [][]entry{
			{dir("usr/"), symlink("usr/up", "../../../../etc"), symlink("dangling", "/opt/none")},
			{file("usr/up/x", "x", 0o644), file("dangling/y", "y", 0o644)},
		},
		want: []string{"/ d", "/dangling l:/opt/none", "/etc d", "/etc/x f:x", "/opt d", "/opt/none d", "/opt/none/y f:y", "/usr d", "/usr/up l:../../../../etc"},
	}, {
		name:    "symlink loop in a parent",
		layers:  [][]entry{{symlink("a", "b"), symlink("b", "a/c")}, {file("a/x", "x", 0o644)}},
		wantErr: []string{"layer 1", "a/x", "too many levels of symbolic links"},
	}, {
		// Deep enough to exhaust the stack of the tree walks that follow.
		name:    "name longer than PATH_MAX",
		layers:  [][]entry{{file(strings.Repeat("d/", 3000)+"x", "x", 0o644)}},
		wantErr: []string{"layer 0", "a name of 6002 bytes (at most 4096)"},
	}, {
		name:    "file under a regular file",
		layers:  [][]entry{{file("etc/passwd", "root", 0o644)}, {file("etc/passwd/x", "x", 0o644)}},
		wantErr: []string{"layer 1", "etc/passwd/x", "/etc/passwd is not a directory"},
	}, {
		name:    "whiteout of . at the root",
		layers:  [][]entry{{file("a", "a", 0o644)}, {file("/.wh..", "", 0)}},
		wantErr: []string{"layer 1", "/.wh..", "whiteout"},
	}, {
		name:    "whiteout of . at the root, then an entry",
		layers:  [][]entry{{file("a", "a", 0o644)}, {file("/.wh..", "", 0), file("b", "b", 0o644)}},
		wantErr: []string{"layer 1", "/.wh..", "whiteout"},
	}, {
		name: "whiteout of .. removes the parent",
		layers: [][]entry{
			{file("usr/bin/sh", "sh", 0o755), file("usr/sub/f", "f", 0o644)},
			{file("usr/sub/.wh...", "", 0)},
		},
		wantErr: []string{"layer 1", "usr/sub/.wh...", "whiteout"},
	}, {
		name:    "whiteout of . removes its directory",
		layers:  [][]entry{{file("etc/a", "a", 0o644)}, {file("etc/.wh..", "", 0)}},
		wantErr: []string{"layer 1", "etc/.wh..", "whiteout"},
	}, {
		name:    "whiteout of nothing",
		layers:  [][]entry{{file("etc/a", "a", 0o644)}, {file("etc/.wh.", "", 0)}},
		wantErr: []string{"layer 1", "etc/.wh.", "whiteout"},
	}, {
		// containerd resolves a whiteout's parent like any other entry's.
		name: "whiteout through a symlinked parent, and under a missing directory",
		layers: [][]entry{
			{file("usr/lib/a", "a", 0o644), file("usr/lib/b", "b", 0o644), symlink("lib", "usr/lib")},
			{file("lib/.wh.a", "", 0), file("nowhere/.wh.x", "", 0)},
		},
		want: []string{"/ d", "/lib l:usr/lib", "/usr d", "/usr/lib d", "/usr/lib/b f:b"},
	}, {
		name:    "hard link to a missing file",
		layers:  [][]entry{{file("a", "a", 0o644), hardlink("b", "c")}},
		wantErr: []string{"layer 0", "b", "hard link to c"},
	}, {
		name:    "hard link to a directory",
		layers:  [][]entry{{dir("d/"), hardlink("b", "d")}},
		wantErr: []string{"layer 0", "b", "hard link to d"},
	}, {
		name:   "hard link through a symlinked parent",
		layers: [][]entry{{file("usr/lib/a", "A", 0o644), symlink("lib", "usr/lib")}, {hardlink("b", "lib/a")}},
		want:   []string{"/ d", "/b f:A", "/lib l:usr/lib", "/usr d", "/usr/lib d", "/usr/lib/a f:A"},
	}, {
		name: "directory over a file and over a symlink",
		layers: [][]entry{
			{file("etc", "not a dir", 0o644), dir("usr/lib/"), file("usr/lib/keep", "k", 0o644), symlink("lib", "usr/lib")},
			{dir("etc/"), file("etc/x", "x", 0o644), dir("lib/")},
		},
		want: []string{"/ d", "/etc d", "/etc/x f:x", "/lib d", "/usr d", "/usr/lib d", "/usr/lib/keep f:k"},
	}, {
		name:   "file over a directory drops its contents",
		layers: [][]entry{{file("d/a", "a", 0o644), file("d/sub/b", "b", 0o644)}, {file("d", "now a file", 0o644)}},
		want:   []string{"/ d", "/d f:now a file"},
	}, {
		name:    "root entry that is not a directory",
		layers:  [][]entry{{file("a", "a", 0o644)}, {file(".", "x", 0o644)}},
		wantErr: []string{"layer 1", "root"},
	}, {
		name:   "the type comes from the type flag, not the mode",
		layers: [][]entry{{oddMode}},
		want:   []string{"/ d", "/odd f:o"},
	}, {
		name:   "empty, dot and dot-dot components",
		layers: [][]entry{{file("a//b/./c", "c", 0o644), file("../../x", "x", 0o644)}},
		want:   []string{"/ d", "/a d", "/a/b d", "/a/b/c f:c", "/x f:x"},
	}, {
		name:    "NUL in a name",
		raw:     [][]byte{nulName.bytes()},
		wantErr: []string{"layer 0", "NUL"},
	}, {
		// The opaque marker hides all that lower layers put in d, also
		// under d/sub, but keeps what its own layer wrote there, even
		// before the marker and under a directory it did not list.
		name: "opaque whiteout",
		layers: [][]entry{
			{file("d/old", "o", 0o644), file("d/sub/old", "o", 0o644), file("d/sub/older", "o", 0o644), file("e/keep", "k", 0o644)},
			{file("d/sub/new", "n", 0o644), file("d/.wh..wh..opq", "", 0), file("d/new", "n", 0o644)},
		},
		want: []string{"/ d", "/d d", "/d/new f:n", "/d/sub d", "/d/sub/new f:n", "/e d", "/e/keep f:k"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var layers []v1.Layer
			for _, entries := range tc.layers {
				layers = append(layers, layer(t, entries...))
			}
			for _, data := range tc.raw {
				layers = append(layers, layerOf(t, data))
			}
			tree, err := Flatten(imageOf(t, layers...), t.TempDir())
			if tc.wantErr != nil {
				if err == nil {
					var got []string
					treeLines(t, tree.Root, "/", &got)
					tree.Close()
					t.Fatalf("flattened to\n%s\nwant an error containing %q", strings.Join(got, "\n"), tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tree.Close()
			var got []string
			treeLines(t, tree.Root, "/", &got)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("flattened tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// rawTar writes tar entries by hand, for what archive/tar's Writer cannot
// write: sparse files (it reads them, but writing was never released) and
// names it refuses.
type rawTar struct{ buf bytes.Buffer }

type sparseFrag struct {
	off  int64
	data string
}

// header returns a header block with the USTAR magic, or the old GNU one
// (which the old GNU sparse type needs).
func rawHeader(name string, typeflag byte, size int64, gnu bool) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	rawOctal(b[100:108], 0o644)
	rawOctal(b[108:116], 0)
	rawOctal(b[116:124], 0)
	rawOctal(b[124:136], size)
	rawOctal(b[136:148], 1700000000)
	b[156] = typeflag
	if gnu {
		copy(b[257:265], "ustar  \x00")
	} else {
		copy(b[257:265], "ustar\x0000")
	}
	return b
}

// rawOctal fills a numeric field: octal digits, then the NUL left in place.
func rawOctal(field []byte, v int64) {
	copy(field, fmt.Sprintf("%0*o", len(field)-1, v))
}

// entry writes a header (checksummed here) and its padded data.
func (r *rawTar) entry(hdr []byte, data string) {
	copy(hdr[148:156], "        ") // the checksum counts its own field as spaces
	var sum int64
	for _, c := range hdr {
		sum += int64(c)
	}
	copy(hdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
	r.buf.Write(hdr)
	r.buf.WriteString(data)
	r.pad()
}

func (r *rawTar) pad() {
	if n := r.buf.Len() % 512; n != 0 {
		r.buf.Write(make([]byte, 512-n))
	}
}

// paxRecord formats "<length> key=value\n", the length counting itself.
func paxRecord(k, v string) string {
	body := " " + k + "=" + v + "\n"
	n := len(body)
	for len(strconv.Itoa(n))+len(body) != n {
		n = len(strconv.Itoa(n)) + len(body)
	}
	return strconv.Itoa(n) + body
}

// paxSparse writes a PAX 1.0 sparse file (GNU tar --sparse --format=pax):
// the real name and size in a PAX header, the sparse map as decimal lines
// at the start of the data, padded to a block, then the fragments.
func (r *rawTar) paxSparse(name string, size int64, frags []sparseFrag) {
	var m strings.Builder
	fmt.Fprintf(&m, "%d\n", len(frags))
	for _, f := range frags {
		fmt.Fprintf(&m, "%d\n%d\n", f.off, len(f.data))
	}
	if n := m.Len() % 512; n != 0 {
		m.WriteString(strings.Repeat("\x00", 512-n))
	}
	for _, f := range frags {
		m.WriteString(f.data)
	}
	records := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", name) + paxRecord("GNU.sparse.realsize", strconv.FormatInt(size, 10))
	r.entry(rawHeader("PaxHeaders.0/sparse", 'x', int64(len(records)), false), records)
	r.entry(rawHeader("GNUSparseFile.0/sparse", '0', int64(m.Len()), false), m.String())
}

// gnuSparse writes an old GNU sparse file (type 'S'): up to four fragments
// listed in the header itself, the real size after them.
func (r *rawTar) gnuSparse(name string, size int64, frags []sparseFrag) {
	var data strings.Builder
	for _, f := range frags {
		data.WriteString(f.data)
	}
	hdr := rawHeader(name, 'S', int64(data.Len()), true)
	for i, f := range frags {
		e := hdr[386+24*i:]
		rawOctal(e[0:12], f.off)
		rawOctal(e[12:24], int64(len(f.data)))
	}
	rawOctal(hdr[483:495], size)
	r.entry(hdr, data.String())
}

func (r *rawTar) file(name, data string) {
	r.entry(rawHeader(name, '0', int64(len(data)), false), data)
}

// bytes ends the archive with its two zero blocks.
func (r *rawTar) bytes() []byte {
	return append(bytes.Clone(r.buf.Bytes()), make([]byte, 1024)...)
}

// spoolUsage finds the spool file Flatten keeps open (unlinked) in dir and
// returns the bytes the file system allocated to it and its length.
func spoolUsage(t *testing.T, dir string) (allocated, length int64) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		p := "/proc/self/fd/" + fd.Name()
		target, err := os.Readlink(p)
		if err != nil || !strings.HasPrefix(target, filepath.Join(dir, "kairos-spool-")) {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512, st.Size
	}
	t.Fatalf("no spool file open in %s", dir)
	return 0, 0
}

// child finds a node by name in a directory.
func child(t *testing.T, dir *fstree.Node, name string) *fstree.Node {
	t.Helper()
	for _, c := range dir.Children {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s in %s", name, dir.Name)
	return nil
}

// readRange reads n bytes at off of a file through the seekable reader
// Open returns (a 4 GiB file is not read whole).
func readRange(t *testing.T, n *fstree.Node, off int64, size int) string {
	t.Helper()
	rc, err := n.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	s, ok := rc.(io.ReadSeeker)
	if !ok {
		t.Fatalf("%s: Open returns a %T, not seekable", n.Name, rc)
	}
	if _, err := s.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(s, b); err != nil {
		t.Fatalf("%s: reading %d bytes at %d: %v", n.Name, size, off, err)
	}
	return string(b)
}

// TestFlattenSparse: a sparse entry (GNU or PAX) of more than 4 GiB stored
// in a few KiB must neither fill the spool with its holes nor get through
// the expansion limit.
func TestFlattenSparse(t *testing.T) {
	const big = 4<<30 + 12345 // offsets beyond 32 bits
	bigFrags := []sparseFrag{{0, "head"}, {1<<30 + 7, "middle"}, {big - 4, "tail"}}
	// A file that ends in a hole: the spool must still be long enough.
	const short = 3 << 20
	shortFrags := []sparseFrag{{5000, "five thousand"}, {1 << 20, "one MiB"}}
	zeros := strings.Repeat("\x00", 2<<20) // dense zeros: no expansion, but no need to store them either

	for _, format := range []string{"pax", "gnu"} {
		t.Run(format, func(t *testing.T) {
			var r rawTar
			r.file("zeros", zeros)
			sparse := r.paxSparse
			if format == "gnu" {
				sparse = r.gnuSparse
			}
			sparse("short", short, shortFrags)
			sparse("big", big, bigFrags)
			r.file("after", "after the holes")
			img := imageOf(t, layerOf(t, r.bytes()))

			t.Run("holes stay holes", func(t *testing.T) {
				tmp := t.TempDir()
				tree, err := FlattenWith(img, FlattenOptions{Tmp: tmp, MaxSparseExpansion: 8 << 30})
				if err != nil {
					t.Fatal(err)
				}
				defer tree.Close()
				allocated, length := spoolUsage(t, tmp)
				t.Logf("spool: %d bytes long, %d allocated", length, allocated)
				if allocated > 1<<20 {
					t.Errorf("the spool holds %d bytes on disk for a few KiB of data: holes were written out", allocated)
				}

				z := child(t, tree.Root, "zeros")
				if z.Size != int64(len(zeros)) || readRange(t, z, 0, len(zeros)) != zeros {
					t.Errorf("zeros: size %d, or wrong content", z.Size)
				}
				s := child(t, tree.Root, "short")
				want := make([]byte, short)
				for _, f := range shortFrags {
					copy(want[f.off:], f.data)
				}
				if s.Size != short || readRange(t, s, 0, short) != string(want) {
					t.Errorf("short: size %d, or wrong content", s.Size)
				}
				b := child(t, tree.Root, "big")
				if b.Size != big {
					t.Errorf("big: size %d, want %d", b.Size, int64(big))
				}
				for _, f := range bigFrags {
					// Each fragment with the hole bytes around it.
					from := max(f.off-3, 0)
					got := readRange(t, b, from, int(min(f.off+int64(len(f.data))+3, big)-from))
					want := strings.Repeat("\x00", int(f.off-from)) + f.data
					want += strings.Repeat("\x00", len(got)-len(want))
					if got != want {
						t.Errorf("big at %d: %q, want %q", from, got, want)
					}
				}
				if got := readRange(t, b, 3<<30, 8); got != strings.Repeat("\x00", 8) {
					t.Errorf("big at 3 GiB: %q, want zeros", got)
				}
				if got := readRange(t, child(t, tree.Root, "after"), 0, 15); got != "after the holes" {
					t.Errorf("after: %q", got)
				}
			})

			t.Run("default limit", func(t *testing.T) {
				_, err := Flatten(img, t.TempDir())
				for _, w := range []string{"layer 0", "big", "4294979641 bytes", "1073741824"} {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("Flatten = %v, want an error containing %q", err, w)
					}
				}
			})

			t.Run("small limit", func(t *testing.T) {
				// The dense zeros come first and count for nothing: the
				// limit is on what the layer does not store.
				_, err := FlattenWith(img, FlattenOptions{Tmp: t.TempDir(), MaxSparseExpansion: 1 << 20})
				for _, w := range []string{"layer 0", "short", "3145728 bytes", "1048576"} {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("Flatten = %v, want an error containing %q", err, w)
					}
				}
			})
		})
	}
}
