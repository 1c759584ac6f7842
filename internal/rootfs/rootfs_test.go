package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kairos-io/kairos/internal/diskfmt/squashfs"
	"github.com/kairos-io/kairos/internal/diskfmt/squashfs/squashfstest"
	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/tests/registry"
)

type entry struct {
	hdr  tar.Header
	data string
}

func layer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Size = int64(len(e.data))
		h.ModTime = time.Unix(1700000000, 0)
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func dir(name string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}
func file(name, data string, mode int64) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}, data: data}
}

// testImage has two layers exercising every entry type and both whiteouts.
func testImage(t *testing.T) v1.Image {
	ping := file("usr/bin/ping", "ping", 0o755)
	ping.hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00"}
	img, err := mutate.AppendLayers(empty.Image,
		layer(t,
			dir("etc/"), file("etc/a", "alpha", 0o644), dir("etc/sub/"), file("etc/sub/x", "x", 0o600),
			entry{hdr: tar.Header{Name: "etc/b", Typeflag: tar.TypeLink, Linkname: "etc/a"}},
			entry{hdr: tar.Header{Name: "lib", Typeflag: tar.TypeSymlink, Linkname: "usr/lib", Mode: 0o777}},
			entry{hdr: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}},
			entry{hdr: tar.Header{Name: "run/fifo", Typeflag: tar.TypeFifo, Mode: 0o644, Uid: 1000, Gid: 100}},
			ping,
		),
		layer(t,
			file("etc/.wh.a", "", 0),
			file("etc/sub/.wh..wh..opq", "", 0), file("etc/sub/y", "why", 0o644),
			file("usr/bin/ping", "ping v2", 0o4755),
		),
	)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// listing renders a tree as "path mode uid:gid size target dev xattrs" lines.
func listing(t *testing.T, n *fstree.Node, prefix string, out *[]string) {
	p := prefix + "/" + n.Name
	if prefix == "" && n.Name == "" {
		p = "/"
	}
	var content string
	if n.Mode.IsRegular() && n.Open != nil {
		rc, err := n.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		content = string(b)
	}
	line := strings.Join([]string{p, n.Mode.String(), itoa(n.UID) + ":" + itoa(n.GID), content, n.Target, itoa(n.DevMajor) + "," + itoa(n.DevMinor)}, " ")
	if c, ok := n.Xattrs["security.capability"]; ok {
		line += " cap=" + string(rune(c[0]+'0'))
	}
	*out = append(*out, line)
	for _, c := range n.Children {
		listing(t, c, strings.TrimSuffix(p, "/"), out)
	}
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func checkTree(t *testing.T, tree *Tree) {
	t.Helper()
	var got []string
	listing(t, tree.Root, "", &got)
	want := []string{
		"/ drwxr-xr-x 0:0   0,0",
		"/dev drwxr-xr-x 0:0   0,0",
		"/dev/null Dcrw-rw-rw- 0:0   1,3",
		"/etc drwxr-xr-x 0:0   0,0",
		"/etc/b -rw-r--r-- 0:0 alpha  0,0",
		"/etc/sub drwxr-xr-x 0:0   0,0",
		"/etc/sub/y -rw-r--r-- 0:0 why  0,0",
		"/lib Lrwxrwxrwx 0:0  usr/lib 0,0",
		"/run drwxr-xr-x 0:0   0,0",
		"/run/fifo prw-r--r-- 1000:100   0,0",
		"/usr drwxr-xr-x 0:0   0,0",
		"/usr/bin drwxr-xr-x 0:0   0,0",
		"/usr/bin/ping urwxr-xr-x 0:0 ping v2  0,0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("flattened tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFlattenWhiteoutsAndTypes(t *testing.T) {
	tree, err := Flatten(testImage(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	checkTree(t, tree)
}

// TestOpenKinds opens the same image as an OCI layout, an OCI archive and
// from a real registry, and writes a squashfs of it that unsquashfs reads.
func TestOpenKinds(t *testing.T) {
	img := testImage(t)
	lay := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(lay, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "img.oci.tar")
	if out, err := exec.Command("tar", "-C", lay, "-cf", archive, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	reg := registry.Start(t, registry.FreeAddr(t))
	ref, err := name.ParseReference(reg.Addr + "/kairos/test:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}

	for _, src := range []string{"oci:" + lay, "oci:" + lay + ":v1", "oci-archive:" + archive, "docker-image://" + ref.String()} {
		t.Run(src[:strings.Index(src, ":")], func(t *testing.T) {
			tree, err := Open(context.Background(), src, t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tree.Close()
			checkTree(t, tree)
		})
	}

	tree, err := Open(context.Background(), "oci:"+lay, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	sq := filepath.Join(t.TempDir(), "root.squashfs")
	if _, err := squashfs.WriteFile(sq, tree.Root, squashfs.Options{}); err != nil {
		t.Fatal(err)
	}
	// The tree (/etc/sub/y, /lib -> usr/lib, /dev/null, a setuid
	// /usr/bin/ping...), as unsquashfs reads it.
	checkTree(t, tree)
	if err := squashfstest.Verify(sq, tree.Root, squashfstest.Options{}); err != nil {
		t.Error(err)
	}
}

func TestOpenErrors(t *testing.T) {
	for src, want := range map[string]string{
		"floppy:/x":             "unknown kind",
		"oci:/nonexistent":      "not an OCI layout",
		"oci-archive:/nope.tar": "no such file",
	} {
		if _, err := Open(context.Background(), src, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", src, err, want)
		}
	}
}
