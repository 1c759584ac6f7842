package baseimage

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/kairos-io/kairos/flavors"
)

func TestWriteLayoutIsReadable(t *testing.T) {
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	content := []byte("ID=debian\n")
	tw.WriteHeader(&tar.Header{Name: "etc/os-release", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write(content)
	tw.Close()
	f.Close()

	b, err := writeLayout(filepath.Join(dir, "oci"), tarPath, "amd64", "docker.io/library/debian:bookworm")
	if err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(b.Layout)
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.Image(b.Digest)
	if err != nil {
		t.Fatalf("image %s not in layout: %v", b.Digest, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Architecture != "amd64" || cfg.OS != "linux" || len(cfg.Config.Env) == 0 {
		t.Errorf("config %+v", cfg)
	}
	if mt, _ := img.MediaType(); mt != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest media type %s, want OCI", mt)
	}
	idx, _ := p.ImageIndex()
	im, _ := idx.IndexManifest()
	if got := im.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != "bookworm" {
		t.Errorf("ref.name annotation %q, want the tag", got)
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Errorf("%d layers, want 1", len(layers))
	}
}

func TestCacheKeyFollowsRecipe(t *testing.T) {
	f := &flavors.Flavor{Name: "debian", Release: "bookworm", Bootstrap: &flavors.Bootstrap{Tool: "mmdebstrap", Suite: "bookworm", Mirror: "http://a"}}
	r := Resolver{Arch: "amd64"}
	k1, _ := r.key(f)
	k2, _ := r.key(f)
	f.Bootstrap.Mirror = "http://b"
	k3, _ := r.key(f)
	if k1 != k2 || k1 == k3 || !strings.HasPrefix(k1, "debian-bookworm-amd64-") {
		t.Errorf("keys %s %s %s", k1, k2, k3)
	}
}

func TestUnreachableWithoutBootstrapIsAClearError(t *testing.T) {
	f := &flavors.Flavor{Name: "fedora", Release: "40", BaseImage: "127.0.0.1:1/fedora:40"}
	r := Resolver{CacheDir: t.TempDir(), Arch: "amd64", ProbeTimeout: 5 * time.Second}
	_, err := r.Resolve(context.Background(), f, "")
	if err == nil || !strings.Contains(err.Error(), "no offline bootstrap") || !strings.Contains(err.Error(), "BASE_IMAGE") {
		t.Errorf("want a clear error, got %v", err)
	}
}

func TestCachedBootstrapIsReused(t *testing.T) {
	cache := t.TempDir()
	f := &flavors.Flavor{Name: "debian", Release: "bookworm", BaseImage: "127.0.0.1:1/debian:bookworm",
		Bootstrap: &flavors.Bootstrap{Tool: "no-such-tool"}}
	r := Resolver{CacheDir: cache, Arch: "amd64", ProbeTimeout: 5 * time.Second}
	key, _ := r.key(f)
	entry := filepath.Join(cache, key)
	os.MkdirAll(filepath.Join(entry, "oci"), 0o755)
	digest := "sha256:" + strings.Repeat("a", 64)
	os.WriteFile(filepath.Join(entry, "digest"), []byte(digest), 0o644)
	b, err := r.Resolve(context.Background(), f, "")
	if err != nil {
		t.Fatalf("cached entry not reused (the bootstrap tool would fail): %v", err)
	}
	if b.Digest.String() != digest || b.Layout != filepath.Join(entry, "oci") {
		t.Errorf("base %+v", b)
	}
}
