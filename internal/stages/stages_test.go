package stages

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, root, dir, name, content string) {
	t.Helper()
	p := filepath.Join(root, dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunStageOrderAndSteps(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, "/system/oem", "00_defaults.yaml", `
stages:
  boot:
    - name: default motd
      files:
        - path: /etc/motd
          content: "default\n"
          permissions: 0640
  boot.before:
    - directories:
        - path: /var/lib/kairos/x
          permissions: 0700
`)
	writeConfig(t, root, "/oem", "90_custom.yaml", `#cloud-config
stages:
  boot:
    - name: user motd wins
      files:
        - path: /etc/motd
          content: "user\n"
    - name: skipped
      if: "false"
      files:
        - path: /etc/never
          content: "x"
    - environment:
        FOO: bar
  fs:
    - files:
        - path: /etc/fs-stage
          content: "x"
`)
	sources, errs := Load(root, DefaultDirs)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(sources) != 2 || !strings.HasSuffix(sources[0].Path, "00_defaults.yaml") {
		t.Fatalf("sources %+v", sources)
	}
	if err := (Runner{Root: root}).RunStage(context.Background(), sources, "boot"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "etc/motd"))
	if err != nil || string(data) != "user\n" {
		t.Errorf("/etc/motd = %q, %v; later sources must win", data, err)
	}
	if st, err := os.Stat(filepath.Join(root, "var/lib/kairos/x")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("boot.before directory: %v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/never")); err == nil {
		t.Error("step with a false if condition ran")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/fs-stage")); err == nil {
		t.Error("fs stage ran during boot")
	}
	env, _ := os.ReadFile(filepath.Join(root, "etc/environment"))
	if string(env) != "FOO=bar\n" {
		t.Errorf("/etc/environment = %q", env)
	}
}

func TestFailingStepIsReportedAndOthersRun(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, "/oem", "a.yaml", `
stages:
  network:
    - name: broken
      commands: ["exit 3"]
    - name: fine
      files:
        - path: /etc/ok
          content: ok
`)
	sources, _ := Load(root, DefaultDirs)
	err := (Runner{Root: root}).RunStage(context.Background(), sources, "network")
	if err == nil || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "a.yaml") {
		t.Errorf("error %v should name the failed step and its file", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/ok")); err != nil {
		t.Errorf("steps after a failure must still run: %v", err)
	}
}

func TestBadFileNamesFileAndLine(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, "/oem", "bad.yaml", "stages:\n  boot:\n    - files: [\n")
	writeConfig(t, root, "/oem", "good.yaml", "stages: {boot: [{commands: [\"true\"]}]}\n")
	sources, errs := Load(root, DefaultDirs)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "bad.yaml") || !strings.Contains(errs[0].Error(), "line") {
		t.Errorf("errors %v should name bad.yaml and a line", errs)
	}
	if len(sources) != 1 {
		t.Errorf("a bad file must not hide the good ones: %d sources", len(sources))
	}
}

// A layout step in a run without the node's disks (a scratch root, an
// image being built) fails: it is never skipped in silence.
func TestLayoutNeedsDisks(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, "/oem", "a.yaml", `
stages:
  rootfs:
    - name: grow
      layout: {device: {label: COS_PERSISTENT}, expand_partition: {size: 0}}
`)
	sources, _ := Load(root, DefaultDirs)
	err := (Runner{Root: root}).RunStage(context.Background(), sources, "rootfs")
	if err == nil || !strings.Contains(err.Error(), "(grow)") {
		t.Errorf("RunStage: %v", err)
	}
}
