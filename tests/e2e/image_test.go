//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageArchive checks that +image's OCI archive is readable by skopeo,
// carries the Kairos labels, and matches its checksum file.
func TestImageArchive(t *testing.T) {
	archive := artifact(t, "KAIROS_E2E_IMAGE")
	out, err := exec.Command("skopeo", "inspect", "oci-archive:"+archive).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	var info struct {
		Architecture string
		Os           string
		Labels       map[string]string
		Layers       []string
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("skopeo output: %v\n%s", err, out)
	}
	if info.Architecture != "amd64" || info.Os != "linux" {
		t.Errorf("platform %s/%s, want linux/amd64", info.Os, info.Architecture)
	}
	want := map[string]string{"io.kairos.flavor": "debian", "io.kairos.variant": "core", "io.kairos.targetarch": "amd64"}
	if v := os.Getenv("KAIROS_E2E_VERSION"); v != "" {
		want["io.kairos.release"] = v
	}
	for k, v := range want {
		if info.Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, info.Labels[k], v)
		}
	}
	if len(info.Layers) == 0 {
		t.Error("image has no layers")
	}
	verifyChecksum(t, archive)
}

func verifyChecksum(t *testing.T, file string) {
	t.Helper()
	line, err := os.ReadFile(file + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(line))
	if len(fields) != 2 || fields[1] != filepath.Base(file) {
		t.Fatalf("%s.sha256 = %q, want \"<hex>  %s\"", file, line, filepath.Base(file))
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != fields[0] {
		t.Errorf("%s: sha256 %s, checksum file says %s", file, got, fields[0])
	}
}
