package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// --dry-run prints every entry of the matrix with the tag it would get,
// narrowed by the flags.
func TestReleaseDryRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "release.yaml")
	if err := os.WriteFile(file, []byte("version: v2.0.0\nflavors: [debian]\nk3s: [v1.31.2+k3s1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want []string
		n    int
	}{
		{[]string{"-f", file}, []string{
			"debian-bookworm-core-amd64-generic -> r.example/kairos/debian:bookworm-core-amd64-generic-v2.0.0",
			"debian-bookworm-standard-amd64-generic-k3sv1.31.2+k3s1 -> r.example/kairos/debian:bookworm-standard-amd64-generic-v2.0.0-k3sv1.31.2-k3s1",
		}, 2},
		{[]string{"-f", file, "--variant", "core", "--version", "v2.0.1"}, []string{"debian:bookworm-core-amd64-generic-v2.0.1"}, 1},
	} {
		cmd := newReleaseCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append(c.args, "--registry", "r.example/kairos", "--dry-run"))
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: no %q in\n%s", c.args, w, out.String())
			}
		}
		if !strings.Contains(out.String(), ": "+string(rune('0'+c.n))+" entries") {
			t.Errorf("%v: want %d entries:\n%s", c.args, c.n, out.String())
		}
	}
	for _, args := range [][]string{{"--dry-run"}, {"--registry", "r/k", "--dry-run"}} {
		cmd := newReleaseCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetArgs(args)
		if err := cmd.Execute(); err == nil {
			t.Errorf("%v accepted (no registry, or no version)", args)
		}
	}
}

// release.json lists the entries and every file with its checksum, and
// SHA256SUMS covers release.json too.
func TestReleaseManifest(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.iso"), []byte("iso"), 0o644)
	man := Manifest{Version: "v1", Registry: "r/k", Images: []ImageRecord{
		{Entry: "debian-bookworm-core-amd64-generic", Ref: "r/k/debian:x", Digest: "sha256:ab", Media: []string{"a.iso"}},
		{Entry: "debian-bookworm-core-arm64-generic", Error: "a arm64 entry needs a arm64 builder"},
	}}
	if err := writeManifest(dir, &man); err != nil {
		t.Fatal(err)
	}
	var got Manifest
	data, _ := os.ReadFile(filepath.Join(dir, "release.json"))
	if err := json.Unmarshal(data, &got); err != nil || len(got.Images) != 2 || len(got.Files) != 1 || got.Files[0].Name != "a.iso" {
		t.Errorf("release.json: %s (%v)", data, err)
	}
	sums, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if !strings.Contains(string(sums), "  release.json\n") || !strings.Contains(string(sums), "  a.iso\n") {
		t.Errorf("SHA256SUMS:\n%s", sums)
	}
	c := exec.Command("sha256sum", "-c", "SHA256SUMS")
	c.Dir = dir
	if out, err := c.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
	var buf bytes.Buffer
	summary(&buf, man)
	if !strings.Contains(buf.String(), "FAILED: a arm64 entry") || !strings.Contains(buf.String(), "sha256:ab") {
		t.Errorf("summary:\n%s", buf.String())
	}
}

func TestHTTPRegistry(t *testing.T) {
	for ref, want := range map[string]bool{
		"127.0.0.1:5000/kairos/debian:x": true, "localhost/kairos": true, "[::1]:5000/k/d:x": true,
		"127.0.0.2:5000/k/d": true, "registry.example.com/k/d:x": false, "10.0.2.2:5000/k/d": false,
	} {
		if got := httpRegistry(ref, false); got != want {
			t.Errorf("%s: %v, want %v", ref, got, want)
		}
	}
	if !httpRegistry("registry.example.com/k/d", true) {
		t.Error("--insecure ignored")
	}
}
