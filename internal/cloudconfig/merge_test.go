package cloudconfig

import (
	"os"
	"path/filepath"
	"strings"
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

// The kernel command line's dotted keys, as upstream: merged after the
// files (they win); the kernel's own words are left alone; a value of the
// wrong type drops the command line's config, reported.
func TestLoadNodeCmdline(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "oem"), 0o755)
	os.WriteFile(filepath.Join(root, "oem", "90_custom.yaml"), []byte("#cloud-config\ninstall:\n  device: /dev/sda\n  auto: false\n"), 0o644)
	m := LoadNode(root, `BOOT_IMAGE=/vmlinuz root=LABEL=COS_ACTIVE quiet install.device=/dev/vda install.auto=true "kairos.config=k3s.args=--disable=traefik" console=ttyS0`)
	c := m.Config()
	if c.Install.Device != "/dev/vda" || !c.Install.Auto || len(c.K3s.Args) != 1 || c.K3s.Args[0] != "--disable=traefik" {
		t.Errorf("config %+v %+v", c.Install, c.K3s)
	}
	if _, ok := m.Values["root"]; ok || len(m.Skipped) > 0 {
		t.Errorf("kernel words taken: %v, skipped %v", m.Values, m.Skipped)
	}
	m = LoadNode(root, "install.auto=maybe")
	if len(m.Skipped) != 1 || !strings.Contains(m.Skipped[0].Error(), "install.auto") || m.Config().Install.Device != "/dev/sda" {
		t.Errorf("bad value: skipped %v, device %q", m.Skipped, m.Config().Install.Device)
	}
}

// Templates are rendered for this system in Values, and kept whole in Raw
// (what an install copies to the node, which renders them itself).
func TestLoadKeepsTemplatesRaw(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "oem"), 0o755)
	os.WriteFile(filepath.Join(root, "oem", "90_custom.yaml"), []byte("#cloud-config\nhostname: node-{{ trunc 4 .MachineID }}\n"), 0o644)
	m := Load(root)
	if h := m.Values["hostname"]; h == nil || strings.Contains(h.(string), "{{") {
		t.Errorf("rendered hostname %v", h)
	}
	if h := m.Raw["hostname"]; h != "node-{{ trunc 4 .MachineID }}" {
		t.Errorf("raw hostname %v", h)
	}
}

// Merged configs share nothing (the command line's keys never reach Raw
// through a shared mapping), and a stage written as one step adds up too.
func TestMergeCopiesAndStageShapes(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "oem"), 0o755)
	os.WriteFile(filepath.Join(root, "oem", "80.yaml"), []byte("#cloud-config\ninstall:\n  device: /dev/sda\nstages:\n  boot: {commands: [a]}\n"), 0o644)
	// Its template is not YAML by itself: Raw takes its rendered tree.
	os.WriteFile(filepath.Join(root, "oem", "90.yaml"), []byte("#cloud-config\n{{ if true }}stages:\n  boot: [{commands: [b]}]{{ end }}\n"), 0o644)
	m := LoadNode(root, "install.device=/dev/vdb install.reboot=true")
	if m.Config().Install.Device != "/dev/vdb" {
		t.Errorf("command line lost: %v", m.Values)
	}
	if in := m.Raw["install"].(map[string]any); in["device"] != "/dev/sda" || in["reboot"] != nil {
		t.Errorf("command line reached Raw: %v", in)
	}
	if steps := m.Config().Stages["boot"]; len(steps) != 2 || steps[0].Commands[0] != "a" || steps[1].Commands[0] != "b" {
		t.Errorf("boot steps %+v", steps)
	}
}

// The image's defaults count in the node's config but are not copied to
// an installed node; text yaml.v3 cannot round-trip (the live motd, a
// block starting with a blank line) does not empty the typed config.
func TestImageDefaultsAndOddText(t *testing.T) {
	root := t.TempDir()
	live, err := os.ReadFile("../../overlay/rootfs/system/oem/10_live.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for p, s := range map[string]string{"system/oem/10_live.yaml": string(live), "oem/90.yaml": "#cloud-config\ninstall: {auto: true, device: /dev/vda}\n"} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(s), 0o644)
	}
	m := Load(root)
	if c := m.Config(); !c.Install.Auto || c.Install.Device != "/dev/vda" || len(c.Stages["boot"]) == 0 {
		t.Errorf("typed config %+v, boot steps %d", c.Install, len(c.Stages["boot"]))
	}
	if _, ok := m.Raw["stages"]; ok {
		t.Errorf("the image's defaults reached Raw: %v", m.Raw)
	}
}
