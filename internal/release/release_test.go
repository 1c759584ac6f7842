package release

import (
	"strings"
	"testing"
)

func TestRenderParseRoundTrip(t *testing.T) {
	r := Release{Version: "v1.0.0", Arch: "amd64", Flavor: "debian", FlavorRelease: "bookworm", Family: "debian",
		Model: "generic", Variant: "standard", SoftwareVersion: "v1.31.2+k3s1", SoftwareVersionPrefix: "k3s"}
	kv, err := Parse(r.Render())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Fields() {
		if kv[f[0]] != f[1] {
			t.Errorf("%s = %q after round trip, want %q", f[0], kv[f[0]], f[1])
		}
	}
	if got := r.ArtifactName(); got != "kairos-debian-bookworm-standard-amd64-generic-v1.0.0-k3sv1.31.2+k3s1" {
		t.Errorf("artifact name %q", got)
	}
	if got := r.IndexTag(); got != "bookworm-standard-generic-v1.0.0-k3sv1.31.2-k3s1" {
		t.Errorf("IndexTag() = %q", got)
	}
	if got := r.ImageTag(); got != "bookworm-standard-amd64-generic-v1.0.0-k3sv1.31.2-k3s1" {
		t.Errorf("image tag %q", got)
	}
}

func TestParseForms(t *testing.T) {
	kv, err := Parse([]byte("# comment\n\nA=plain\nB=\"double \\\"q\\\"\"\nC='single'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if kv["A"] != "plain" || kv["B"] != `double "q"` || kv["C"] != "single" {
		t.Errorf("parsed %v", kv)
	}
	if _, err := Parse([]byte("A=1\nnot a pair\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("want an error naming line 2, got %v", err)
	}
}
