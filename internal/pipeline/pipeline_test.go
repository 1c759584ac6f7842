package pipeline

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/internal/baseimage"
	"github.com/kairos-io/kairos/internal/matrix"
	"github.com/kairos-io/kairos/internal/publish"
	"github.com/kairos-io/kairos/tests/registry"
)

func entries(t *testing.T) []matrix.Entry {
	t.Helper()
	cat, err := flavors.Load()
	if err != nil {
		t.Fatal(err)
	}
	es, err := matrix.File{Version: "v1.0.0", Flavors: []string{"debian"}, K3s: []string{"v1.31.2+k3s1"}}.Expand(cat, matrix.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// The inputs digest changes with each input and with nothing else.
func TestInputsDigest(t *testing.T) {
	es := entries(t)
	base := baseimage.Base{Layout: "/cache/base/x", Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}}
	files := map[string]string{"agent": "sha256:1", "writer": "sha256:2", "self": "sha256:3"}
	args := map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}
	ref := InputsDigest(es[0], "r/k", []string{"iso"}, args, base, files, true)
	if again := InputsDigest(es[0], "r/k", []string{"iso"}, map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}, base,
		map[string]string{"self": "sha256:3", "writer": "sha256:2", "agent": "sha256:1"}, true); again != ref {
		t.Errorf("the same inputs give %s and %s", ref, again)
	}
	other := base
	other.Digest.Hex = strings.Repeat("b", 64)
	for what, d := range map[string]string{
		"entry":      InputsDigest(es[1], "r/k", []string{"iso"}, args, base, files, true),
		"registry":   InputsDigest(es[0], "r/other", []string{"iso"}, args, base, files, true),
		"targets":    InputsDigest(es[0], "r/k", []string{"iso", "raw"}, args, base, files, true),
		"args":       InputsDigest(es[0], "r/k", []string{"iso"}, map[string]string{"SOURCE_DATE_EPOCH": "1"}, base, files, true),
		"base":       InputsDigest(es[0], "r/k", []string{"iso"}, args, other, files, true),
		"agent":      InputsDigest(es[0], "r/k", []string{"iso"}, args, base, map[string]string{"agent": "sha256:9", "writer": "sha256:2", "self": "sha256:3"}, true),
		"provenance": InputsDigest(es[0], "r/k", []string{"iso"}, args, base, files, false),
	} {
		if d == ref {
			t.Errorf("a change of %s keeps the inputs digest", what)
		}
	}
}

func TestCacheRef(t *testing.T) {
	es := entries(t)
	r := &run{Config: Config{CacheRepo: "r/k/kairos-cache"}}
	for _, e := range es {
		ref := r.cacheRef(e, "iso")
		tag := ref[strings.LastIndex(ref, ":")+1:]
		if !strings.HasPrefix(ref, "r/k/kairos-cache:") || strings.ContainsAny(tag, "+/") || len(tag) > 128 || strings.Contains(tag, e.Version) {
			t.Errorf("%s: cache ref %s (want a valid tag without the version)", e.ID(), ref)
		}
	}
	long := es[0]
	long.Model = strings.Repeat("m", 150)
	if ref := r.cacheRef(long, "iso"); len(ref[strings.LastIndex(ref, ":")+1:]) > 128 {
		t.Errorf("a long entry gives a tag of %d characters", len(ref))
	}
}

// Concurrent builds' progress comes out in whole lines, each with its
// entry.
func TestPrefixWriter(t *testing.T) {
	var buf bytes.Buffer
	out := &syncWriter{w: &buf}
	a, b := &prefixWriter{out: out, prefix: "[a] "}, &prefixWriter{out: out, prefix: "[b] "}
	a.Write([]byte("#1 inst"))
	b.Write([]byte("#1 other\n#2 "))
	a.Write([]byte("all\n"))
	b.Write([]byte("done"))
	b.Flush()
	want := "[b] #1 other\n[a] #1 install\n[b] #2 done\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

// A re-run skips an entry only when its image is in the registry with the
// same inputs and digest and its media are files of the release directory.
func TestUnchanged(t *testing.T) {
	reg := registry.InProcess(t)
	es := entries(t)
	e := es[0]
	dir := t.TempDir()
	r := &run{Config: Config{Registry: reg + "/kairos", Dir: dir, Out: io.Discard, Entries: es}, prev: map[string]ImageRecord{}, out: &syncWriter{w: io.Discard}}
	ref := e.Ref(r.Registry)
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.Annotations(img, map[string]string{publish.InputsAnnotation: "sha256:in"}).(v1.Image)
	nr, _ := name.ParseReference(ref)
	if err := remote.Write(nr, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	os.WriteFile(filepath.Join(dir, "a.iso"), []byte("iso"), 0o644)
	prev := ImageRecord{Entry: e.ID(), Ref: ref, Digest: d.String(), Inputs: "sha256:in", Media: []string{"a.iso"}}
	check := func(what string, p ImageRecord, inputs string, want bool) {
		t.Helper()
		r.prev[e.ID()] = p
		rec := &ImageRecord{Entry: e.ID(), Ref: ref, Inputs: inputs, Builder: "b"}
		if got := r.unchanged(context.Background(), e, rec); got != want {
			t.Errorf("%s: unchanged = %v, want %v", what, got, want)
		}
		if want && (!rec.Skipped || rec.Digest != p.Digest || rec.Builder != "b") {
			t.Errorf("%s: the record is not the earlier one, skipped: %+v", what, rec)
		}
	}
	check("same inputs, media there", prev, "sha256:in", true)
	check("other inputs", prev, "sha256:other", false)
	moved := prev
	moved.Digest = "sha256:" + strings.Repeat("0", 64)
	check("the tag names another digest", moved, "sha256:in", false)
	missing := prev
	missing.Media = []string{"a.iso", "b.raw"}
	check("a medium is missing", missing, "sha256:in", false)
	outside := prev
	outside.Media = []string{"../" + filepath.Base(dir) + "/a.iso"}
	check("a medium named outside the directory", outside, "sha256:in", false)
	delete(r.prev, e.ID())
	rec := &ImageRecord{Entry: e.ID(), Ref: ref, Inputs: "sha256:in"}
	if r.unchanged(context.Background(), e, rec) {
		t.Error("skipped without an earlier record of it")
	}
}
