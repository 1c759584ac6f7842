package publish

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kairos-io/kairos/tests/ocitest"
	"github.com/kairos-io/kairos/tests/registry"
)

// An OCI archive pushed to a real registry is there under its tag with
// the digest Push gives, and Pushed finds it.
func TestPush(t *testing.T) {
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	archive := ocitest.Archive(t, img)
	reg := registry.Start(t, registry.FreeAddr(t))
	ref := reg.Addr + "/kairos/debian:bookworm-core-amd64-generic-v1.0.0"
	ctx := context.Background()
	if _, ok := Pushed(ctx, ref, false); ok {
		t.Fatal("pushed before the push")
	}
	d, err := Push(ctx, archive, ref, v1.Platform{OS: "linux", Architecture: "amd64"}, false, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d != want {
		t.Errorf("digest %s, want %s", d, want)
	}
	r, _ := name.ParseReference(ref)
	got, err := remote.Head(r)
	if err != nil || got.Digest != want {
		t.Errorf("the registry has %v (%v), want %s", got, err, want)
	}
	if pd, ok := Pushed(ctx, ref, false); !ok || pd != want {
		t.Errorf("Pushed = %s, %v", pd, ok)
	}
	if _, err := Push(ctx, filepath.Join(t.TempDir(), "missing.oci.tar"), ref, v1.Platform{OS: "linux", Architecture: "amd64"}, false, t.TempDir()); err == nil {
		t.Error("a missing archive pushed")
	}
}
