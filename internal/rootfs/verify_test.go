package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// orFatal calls f (a method value such as img.Manifest) and fails the
// test on an error.
func orFatal[T any](t *testing.T, f func() (T, error)) T {
	t.Helper()
	v, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readAllT(t *testing.T, open func() (io.ReadCloser, error)) []byte {
	t.Helper()
	rc := orFatal(t, open)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func digestOf(t *testing.T, b []byte) v1.Hash {
	h, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func blobPath(dir string, h v1.Hash) string {
	return filepath.Join(dir, "blobs", h.Algorithm, h.Hex)
}

func writeBlob(t *testing.T, dir string, h v1.Hash, b []byte) {
	t.Helper()
	if err := os.WriteFile(blobPath(dir, h), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// newLayout writes an OCI layout holding what add appends.
func newLayout(t *testing.T, add func(layout.Path) error) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := add(p); err != nil {
		t.Fatal(err)
	}
	return dir
}

func imageLayout(t *testing.T, img v1.Image) string {
	return newLayout(t, func(p layout.Path) error { return p.AppendImage(img) })
}

// pointIndexAt makes index.json's only descriptor name the blob raw (which
// it writes), as a publisher would after editing a manifest.
func pointIndexAt(t *testing.T, dir string, raw []byte) {
	t.Helper()
	h := digestOf(t, raw)
	writeBlob(t, dir, h, raw)
	idx := orFatal(t, func() (*v1.IndexManifest, error) {
		f, err := os.Open(filepath.Join(dir, "index.json"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return v1.ParseIndexManifest(f)
	})
	idx.Manifests[0].Digest, idx.Manifests[0].Size = h, int64(len(raw))
	if err := os.WriteFile(filepath.Join(dir, "index.json"), marshal(t, idx), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOpenRejectsTamperedBlobs changes one blob of an OCI layout at a time
// and requires OpenWith to refuse it, as oci: and as oci-archive:, naming
// the digest the blob should have and the one it has.
func TestOpenRejectsTamperedBlobs(t *testing.T) {
	img := testImage(t)
	man := orFatal(t, img.Manifest)
	mdig := orFatal(t, img.Digest)

	cases := []struct {
		name string
		// build returns the layout and what the error must name.
		build func(t *testing.T) (string, []string)
	}{
		{"layer swapped for another gzip tar", func(t *testing.T) (string, []string) {
			dir := imageLayout(t, img)
			evil := layer(t, file("etc/a", "evil", 0o644), file("usr/bin/ping", "evil", 0o4755))
			writeBlob(t, dir, man.Layers[0].Digest, readAllT(t, evil.Compressed))
			return dir, []string{man.Layers[0].Digest.String(), orFatal(t, evil.Digest).String()}
		}},
		{"config swapped", func(t *testing.T) (string, []string) {
			dir := imageLayout(t, img)
			cfg := orFatal(t, img.ConfigFile)
			cfg.Config.Env = append(cfg.Config.Env, "LD_PRELOAD=/evil.so")
			raw := marshal(t, cfg)
			writeBlob(t, dir, man.Config.Digest, raw)
			return dir, []string{"config", man.Config.Digest.String(), digestOf(t, raw).String()}
		}},
		{"manifest swapped", func(t *testing.T) (string, []string) {
			dir := imageLayout(t, img)
			m := man.DeepCopy()
			m.Annotations = map[string]string{"evil": "yes"}
			raw := marshal(t, m)
			writeBlob(t, dir, mdig, raw)
			return dir, []string{"manifest", mdig.String(), digestOf(t, raw).String()}
		}},
		{"layer size off", func(t *testing.T) (string, []string) {
			// The blob is intact but the manifest (consistently
			// re-published) claims another size.
			dir := imageLayout(t, img)
			m := man.DeepCopy()
			m.Layers[0].Size++
			pointIndexAt(t, dir, marshal(t, m))
			return dir, []string{man.Layers[0].Digest.String(), "bytes"}
		}},
		{"diff_id wrong", func(t *testing.T) (string, []string) {
			// Every blob matches its descriptor, but the config names
			// another uncompressed content for the second layer.
			dir := imageLayout(t, img)
			cfg := orFatal(t, img.ConfigFile)
			good := cfg.RootFS.DiffIDs[1]
			bad := digestOf(t, []byte("another layer"))
			cfg.RootFS.DiffIDs[1] = bad
			raw := marshal(t, cfg)
			writeBlob(t, dir, digestOf(t, raw), raw)
			m := man.DeepCopy()
			m.Config.Digest, m.Config.Size = digestOf(t, raw), int64(len(raw))
			pointIndexAt(t, dir, marshal(t, m))
			return dir, []string{"diff_id", bad.String(), good.String()}
		}},
		{"nested index swapped", func(t *testing.T) (string, []string) {
			child := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img,
				Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}})
			dir := newLayout(t, func(p layout.Path) error { return p.AppendIndex(child) })
			cdig := orFatal(t, child.Digest)
			im := orFatal(t, child.IndexManifest)
			im.Annotations = map[string]string{"evil": "yes"}
			raw := marshal(t, im)
			writeBlob(t, dir, cdig, raw)
			return dir, []string{"index", cdig.String(), digestOf(t, raw).String()}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, want := c.build(t)
			archive := filepath.Join(t.TempDir(), "img.oci.tar")
			if out, err := exec.Command("tar", "-C", dir, "-cf", archive, ".").CombinedOutput(); err != nil {
				t.Fatalf("tar: %v\n%s", err, out)
			}
			for _, src := range []string{"oci:" + dir, "oci-archive:" + archive} {
				tree, err := OpenWith(context.Background(), src, Options{Tmp: t.TempDir()})
				if err == nil {
					tree.Close()
					t.Errorf("%s: opened a tampered image", src[:strings.Index(src, ":")])
					continue
				}
				t.Logf("%s: %v", src[:strings.Index(src, ":")], err)
				for _, w := range want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: error %q does not name %s", src[:strings.Index(src, ":")], err, w)
					}
				}
			}
		})
	}
}

// TestOpenVerifiesEveryCompression opens (so verifies) an untampered image
// whose layers are gzip, zstd and plain tar.
func TestOpenVerifiesEveryCompression(t *testing.T) {
	plain := readAllT(t, layer(t, file("c", "plain", 0o644)).Uncompressed)
	zstdTar := readAllT(t, layer(t, file("b", "zstd", 0o644)).Uncompressed)
	zl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(zstdTar)), nil },
		tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image,
		layer(t, file("a", "gzip", 0o644)), zl, static.NewLayer(plain, types.OCIUncompressedLayer))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := OpenWith(context.Background(), "oci:"+imageLayout(t, img), Options{Tmp: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	var got []string
	for _, c := range tree.Root.Children {
		got = append(got, c.Name+"="+string(readAllT(t, c.Open)))
	}
	if strings.Join(got, " ") != "a=gzip b=zstd c=plain" {
		t.Errorf("tree: %v", got)
	}
}

// paddedLayer is a gzip layer whose tar is padded with zeros after its
// end-of-archive marker to a 10 KiB record, as GNU tar writes it: a tar
// reader stops at the marker, short of the end of the stream.
func paddedLayer(t *testing.T, entries ...entry) v1.Layer {
	padded := readAllT(t, layer(t, entries...).Uncompressed)
	padded = append(padded, make([]byte, 10240-len(padded)%10240)...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(padded)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestVerifiedLayerEarlyClose reads layers as a tar reader does, stopping
// at the end-of-archive marker rather than at the end of the stream, and
// requires the verdict to be reached anyway (by Close), so that the check
// does not depend on the consumer draining; and a layer nobody read is
// reported unchecked.
func TestVerifiedLayerEarlyClose(t *testing.T) {
	img, err := mutate.AppendLayers(empty.Image, paddedLayer(t, file("a", "1", 0o644)), paddedLayer(t, file("b", "2", 0o644)))
	if err != nil {
		t.Fatal(err)
	}
	man := orFatal(t, img.Manifest)
	mdig := orFatal(t, img.Digest)
	for _, tamper := range []bool{false, true} {
		dir := imageLayout(t, img)
		if tamper {
			evil := paddedLayer(t, file("b", "evil", 0o644))
			writeBlob(t, dir, man.Layers[1].Digest, readAllT(t, evil.Compressed))
		}
		p, err := layout.FromPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		v, err := verified(orFatal(t, func() (v1.Image, error) { return p.Image(mdig) }), v1.Descriptor{Digest: mdig, Size: orFatal(t, img.Size)})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.unchecked(); err == nil || !strings.Contains(err.Error(), man.Layers[0].Digest.String()) {
			t.Errorf("before reading: unchecked() = %v, want layer 0 reported", err)
		}
		for _, l := range orFatal(t, v.Layers) {
			rc := orFatal(t, l.Uncompressed)
			tr := tar.NewReader(rc)
			for {
				if _, err := tr.Next(); err != nil {
					break
				}
			}
			rc.Close()
		}
		switch err := v.failure(); {
		case !tamper && err != nil:
			t.Errorf("intact image: %v", err)
		case !tamper && v.unchecked() != nil:
			t.Errorf("intact image read to its tar end: %v", v.unchecked())
		case tamper && (err == nil || !strings.Contains(err.Error(), man.Layers[1].Digest.String())):
			t.Errorf("tampered layer read to its tar end: failure() = %v, want it naming %s", err, man.Layers[1].Digest)
		}
	}
}
