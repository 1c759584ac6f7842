package pipeline

import (
	"bytes"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/internal/baseimage"
	"github.com/kairos-io/kairos/internal/matrix"
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
