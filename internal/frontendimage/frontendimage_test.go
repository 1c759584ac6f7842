package frontendimage

import (
	"archive/tar"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kairos-io/kairos/tests/registry"
)

func spec(t *testing.T) Spec {
	dir := t.TempDir()
	fe, agent := filepath.Join(dir, "kairos-frontend"), filepath.Join(dir, "kairos-agent")
	if err := os.WriteFile(fe, []byte("frontend"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agent, []byte("agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kairos-p2p"), []byte("mesh"), 0o755); err != nil {
		t.Fatal(err)
	}
	return Spec{Frontend: fe, Agents: map[string]string{"linux_amd64": agent, "linux_arm64": agent},
		Version: "v1.2.3", Arch: "amd64", Epoch: time.Unix(1700000000, 0)}
}

// TestArchiveAndPush checks the archive with skopeo, the push with the
// registry's API, and that the same inputs give the same digest.
func TestArchiveAndPush(t *testing.T) {
	s := spec(t)
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of the same inputs: %s and %s", d1, d2)
	}

	archive := filepath.Join(t.TempDir(), "frontend.oci.tar")
	if err := WriteArchive(img, "example.com/kairos/frontend:v1.2.3", archive); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("skopeo", "inspect", "--config", "oci-archive:"+archive).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	var cfg struct {
		Architecture string
		Config       struct {
			Entrypoint []string
			Labels     map[string]string
		}
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Architecture != "amd64" || len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != FrontendPath {
		t.Errorf("config %+v", cfg)
	}
	// Without this label BuildKit refuses named contexts and subrequests.
	if cfg.Config.Labels["moby.buildkit.frontend.caps"] == "" {
		t.Errorf("labels %v lack moby.buildkit.frontend.caps", cfg.Config.Labels)
	}

	reg := registry.Start(t, registry.FreeAddr(t))
	if _, err := Push(img, reg.Addr+"/kairos/frontend:v1.2.3", false); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodHead, "http://"+reg.Addr+"/v2/kairos/frontend/manifests/v1.2.3", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != d1.String() {
		t.Errorf("registry has %s (status %d), pushed %s", resp.Header.Get("Docker-Content-Digest"), resp.StatusCode, d1)
	}
}

// Each platform's directory holds the agent and the mesh's program beside
// it, the files the frontend copies into images.
func TestAgentFiles(t *testing.T) {
	img, err := Build(spec(t))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d: %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		got[h.Name] = string(data)
	}
	for _, plat := range []string{"linux_amd64", "linux_arm64"} {
		if a, m := got["agents/"+plat+"/kairos-agent"], got["agents/"+plat+"/kairos-p2p"]; a != "agent" || m != "mesh" {
			t.Errorf("%s: kairos-agent %q, kairos-p2p %q", plat, a, m)
		}
	}
	s := spec(t)
	os.Remove(filepath.Join(filepath.Dir(s.Agents["linux_amd64"]), "kairos-p2p"))
	if _, err := Build(s); err == nil {
		t.Error("built without the mesh's program")
	}
}
