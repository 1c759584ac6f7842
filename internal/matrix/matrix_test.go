package matrix

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/flavors"
)

func catalog(t *testing.T) *flavors.Catalog {
	t.Helper()
	c, err := flavors.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestExpand(t *testing.T) {
	f, err := Parse("release.yaml", []byte("version: v3.3.0\nflavors: [debian, 'ubuntu:24.04']\narches: [amd64, arm64]\nk3s: [v1.31.2+k3s1, v1.30.5+k3s1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	es, err := f.Expand(catalog(t), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	// 2 flavor releases x 2 arches x (core + 2 standard) = 12.
	if len(es) != 12 {
		t.Fatalf("%d entries", len(es))
	}
	var refs []string
	for _, e := range es {
		refs = append(refs, e.Ref("registry.example.com/kairos"))
	}
	for _, want := range []string{
		"registry.example.com/kairos/debian:bookworm-core-amd64-generic-v3.3.0",
		"registry.example.com/kairos/debian:bookworm-standard-arm64-generic-v3.3.0-k3sv1.31.2-k3s1",
		"registry.example.com/kairos/ubuntu:24.04-standard-amd64-generic-v3.3.0-k3sv1.30.5-k3s1",
	} {
		if !strings.Contains(strings.Join(refs, "\n"), want) {
			t.Errorf("no %s in\n%s", want, strings.Join(refs, "\n"))
		}
	}
	// Narrowed as earthly.sh +release --FLAVOR=debian --VARIANT=core.
	es, err = f.Expand(catalog(t), Filter{Flavor: "debian", Variant: "core", Arch: "amd64"})
	if err != nil || len(es) != 1 || es[0].Plan.Release.ArtifactName() != "kairos-debian-bookworm-core-amd64-generic-v3.3.0" {
		t.Fatalf("narrowed: %v %v", es, err)
	}
}

// The default matrix is every flavor file, both variants, amd64.
func TestDefaultMatrix(t *testing.T) {
	f, err := Parse("release.yaml", []byte("version: v1.0.0\n"))
	if err != nil {
		t.Fatal(err)
	}
	es, err := f.Expand(catalog(t), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * len(catalog(t).Flavors()); len(es) != want {
		t.Errorf("%d entries, want %d", len(es), want)
	}
}

func TestErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"flavors: [debian]\n":                               "version is not set",
		"version: v1\nflavorz: [debian]\n":                  "line 2: field flavorz not found",
		"version: v1\nflavors: [gentoo]\n":                  `"gentoo" is not a flavor`,
		"version: v1\nflavors: [debian]\narches: [s390x]\n": "s390x",
	} {
		f, err := Parse("release.yaml", []byte(doc))
		if err == nil {
			_, err = f.Expand(catalog(t), Filter{})
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
	f, _ := Parse("release.yaml", []byte("version: v1\nflavors: [debian]\n"))
	if _, err := f.Expand(catalog(t), Filter{Flavor: "alpine"}); err == nil {
		t.Error("a filter keeping nothing accepted")
	}
}

// SHA256SUMS lists every file of the release, and sha256sum checks it.
func TestWriteSums(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "sbom"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a.iso"), []byte("iso"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "sbom", "a.spdx.json"), []byte("{}"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "SHA256SUMS.sig"), []byte("sig"), 0o644))
	sums, err := WriteSums(dir)
	must(err)
	if len(sums) != 2 || sums[0].Name != "a.iso" || sums[1].Name != "sbom/a.spdx.json" || sums[0].Size != 3 {
		t.Errorf("sums %+v", sums)
	}
	cmd := exec.Command("sha256sum", "-c", "--strict", SumsFile)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
	must(os.Symlink("a.iso", filepath.Join(dir, "link")))
	if _, err := WriteSums(dir); err == nil {
		t.Error("a symbolic link listed")
	}
}
