package cloudconfig

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadMergesInContractOrder(t *testing.T) {
	root := t.TempDir()
	write := func(p, content string) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("run/initramfs/live/config.yaml", "#cloud-config\nhostname: live\nk3s:\n  enabled: false\n  args: [a]\nstages:\n  boot:\n    - name: one\n")
	write("oem/90_custom.yaml", "#cloud-config\nhostname: node\nk3s:\n  enabled: true\nstages:\n  boot:\n    - name: two\n")
	write("oem/README.yaml", "not a config\n")
	write("usr/local/cloud-config/bad.yaml", "#cloud-config\nhostname: [\n")
	m := Load(root)
	if len(m.Files) != 2 || len(m.Skipped) != 1 {
		t.Fatalf("files %v, skipped %v", m.Files, m.Skipped)
	}
	for key, want := range map[string]any{"hostname": "node", "k3s.enabled": true} {
		if got, ok := m.Get(key); !ok || got != want {
			t.Errorf("%s = %v, want %v (later source wins)", key, got, want)
		}
	}
	if args, _ := m.Get("k3s.args"); len(args.([]any)) != 1 {
		t.Errorf("k3s.args = %v: keys a later file does not set are kept", args)
	}
	if boot, _ := m.Get("stages.boot"); len(boot.([]any)) != 2 {
		t.Errorf("stages.boot = %v, want the steps of both files", boot)
	}
	if _, ok := m.Get("k3s.nope"); ok {
		t.Error("Get of a missing key succeeded")
	}
}
