package publish

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kairos-io/kairos/tests/registry"
)

func image(t *testing.T, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf.OS, cf.Architecture = "linux", arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// What a builder pushes with provenance: an index of the image and an
// attestation manifest (platform unknown/unknown) pointing at it, the
// inputs annotation on the index.
func builderPush(t *testing.T, ref, arch, inputs string) v1.Hash {
	t.Helper()
	img := image(t, arch)
	att, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": d.String()}}})
	idx = mutate.Annotations(idx, map[string]string{InputsAnnotation: inputs}).(v1.ImageIndex)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	h, _ := idx.Digest()
	return h
}

// Pushed reads what a builder pushed and its inputs; Index puts two
// arches (one an index with its attestation, one a plain image) under one
// tag, and refuses two members of one platform.
func TestPushedAndIndex(t *testing.T) {
	reg := registry.Start(t, registry.FreeAddr(t))
	repo := reg.Addr + "/kairos/debian"
	ctx := context.Background()
	amdRef := repo + ":bookworm-core-amd64-generic-v1.0.0"
	if _, _, ok := Pushed(ctx, amdRef, false); ok {
		t.Fatal("pushed before the push")
	}
	amd := builderPush(t, amdRef, "amd64", "sha256:inputs-1")
	if d, in, ok := Pushed(ctx, amdRef, false); !ok || d != amd || in != "sha256:inputs-1" {
		t.Errorf("Pushed = %s %q %v, want %s with its inputs", d, in, ok, amd)
	}
	armImg := image(t, "arm64")
	armRef := repo + ":bookworm-core-arm64-generic-v1.0.0"
	r, _ := name.ParseReference(armRef)
	if err := remote.Write(r, armImg); err != nil {
		t.Fatal(err)
	}
	arm, _ := armImg.Digest()
	if _, in, ok := Pushed(ctx, armRef, false); !ok || in != "" {
		t.Errorf("an image without inputs: %q %v", in, ok)
	}

	indexRef := repo + ":bookworm-core-generic-v1.0.0"
	d, err := Index(ctx, indexRef, []string{repo + "@" + amd.String(), repo + "@" + arm.String()}, false)
	if err != nil {
		t.Fatal(err)
	}
	ir, _ := name.ParseReference(indexRef)
	idx, err := remote.Index(ir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := idx.Digest(); got != d {
		t.Errorf("the tag has %s, Index said %s", got, d)
	}
	m, _ := idx.IndexManifest()
	plats := map[string]v1.Hash{}
	for _, desc := range m.Manifests {
		plats[desc.Platform.String()] = desc.Digest
	}
	if len(m.Manifests) != 3 || plats["unknown/unknown"] == (v1.Hash{}) || plats["linux/arm64"] != arm {
		t.Errorf("index manifests %v: want linux/amd64, its attestation, linux/arm64", plats)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := remote.Image(ir, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
		if err != nil {
			t.Fatalf("pulling %s from the index: %v", arch, err)
		}
		if cf, _ := img.ConfigFile(); cf.Architecture != arch {
			t.Errorf("the index gives %s for %s", cf.Architecture, arch)
		}
	}
	if _, err := Index(ctx, indexRef, []string{repo + "@" + arm.String(), repo + "@" + arm.String()}, false); err == nil {
		t.Error("two members of one platform made an index")
	}
}
