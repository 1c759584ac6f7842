package pipeline

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// release.json lists the entries and every file with its checksum, and
// SHA256SUMS covers release.json too.
func TestReleaseManifest(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.iso"), []byte("iso"), 0o644)
	man := Manifest{Version: "v1", Registry: "r/k", Images: []ImageRecord{
		{Entry: "debian-bookworm-core-amd64-generic", Ref: "r/k/debian:x", Digest: "sha256:ab", Media: []string{"a.iso"}, Builder: "tls", Steps: 12, Cached: 10},
		{Entry: "debian-bookworm-core-arm64-generic", Error: "a arm64 entry needs a arm64 builder"},
	}}
	if err := WriteManifest(dir, &man); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifest(dir)
	data, _ := os.ReadFile(filepath.Join(dir, "release.json"))
	if err != nil || len(got.Images) != 2 || len(got.Files) != 1 || got.Files[0].Name != "a.iso" || got.Images[0].Cached != 10 {
		t.Errorf("release.json: %s (%v)", data, err)
	}
	if m, err := ReadManifest(t.TempDir()); err != nil || len(m.Images) != 0 {
		t.Errorf("no release.json: %+v, %v", m, err)
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
	Summary(&buf, man)
	if !strings.Contains(buf.String(), "FAILED: a arm64 entry") || !strings.Contains(buf.String(), "sha256:ab") || !strings.Contains(buf.String(), "tls") || !strings.Contains(buf.String(), "10/12") {
		t.Errorf("summary:\n%s", buf.String())
	}
}

func TestHTTPRegistry(t *testing.T) {
	for ref, want := range map[string]bool{
		"127.0.0.1:5000/kairos/debian:x": true, "localhost/kairos": true, "[::1]:5000/k/d:x": true,
		"127.0.0.2:5000/k/d": true, "registry.example.com/k/d:x": false, "10.0.2.2:5000/k/d": false,
	} {
		if got := HTTPRegistry(ref, false); got != want {
			t.Errorf("%s: %v, want %v", ref, got, want)
		}
	}
	if !HTTPRegistry("registry.example.com/k/d", true) {
		t.Error("--insecure ignored")
	}
}
