package cloudconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidConfigs(t *testing.T) {
	good := `#cloud-config
hostname: node-1
users:
  - name: kairos
    passwd: kairos
    groups: [admin]
    ssh_authorized_keys:
      - github:someone
install:
  auto: true
  device: /dev/vda
  reboot: true
  partitions:
    persistent:
      size: 4096
k3s:
  enabled: true
  args: ["--disable=traefik"]
  env:
    K3S_TOKEN: x
stages:
  boot:
    - name: motd
      if: "[ -e /run/cos/active_mode ]"
      files:
        - path: /etc/motd
          content: hi
          permissions: 0644
      systemctl:
        enable: [sshd]
  network.after:
    - commands: echo up
`
	if p := Validate("good.yaml", []byte(good)); len(p) > 0 {
		t.Errorf("valid config reported: %v", p)
	}
	// Every cloud-config the project ships validates.
	for _, glob := range []string{"../../overlay/rootfs/system/oem/*.yaml", "../../tests/specs/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			data, _ := os.ReadFile(f)
			if !strings.HasPrefix(string(data), "#cloud-config") {
				continue
			}
			if p := Validate(f, data); len(p) > 0 {
				t.Errorf("%s: %v", f, p)
			}
		}
	}
}

func TestProblemsNameFileLineAndColumn(t *testing.T) {
	bad := `#cloud-config
hostname: [a, b]
instal:
  auto: true
k3s:
  enabled: true
  argz: []
p2p:
  role: boss
stages:
  bootz:
    - commands: [x]
  boot:
    - name: x
      filez: []
`
	got := Validate("/oem/90_custom.yaml", []byte(bad))
	var lines []string
	for _, p := range got {
		lines = append(lines, p.String())
	}
	want := []string{
		`/oem/90_custom.yaml:2:11: error: hostname: want a single value, got a list`,
		`/oem/90_custom.yaml:3:1: warning: unknown key "instal": nothing reads it (did you mean "install"?)`,
		`/oem/90_custom.yaml:7:3: warning: unknown key "argz" in k3s: nothing reads it (did you mean "args"?)`,
		`/oem/90_custom.yaml:9:9: error: p2p.role: "boss" is not one of master, worker, none, auto`,
		`/oem/90_custom.yaml:15:7: warning: unknown key "filez" in stages.boot[0]: nothing reads it (did you mean "files"?)`,
	}
	if len(lines) != len(want) {
		t.Fatalf("problems:\n%s", strings.Join(lines, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, lines[i], want[i])
		}
	}
}

func TestHeaderAndSyntax(t *testing.T) {
	// Without a header a file is a stage file: its stages are fine, keys
	// only a cloud-config has are warnings.
	if p := Validate("a.yaml", []byte("stages:\n  boot:\n    - commands: [x]\n")); len(p) != 0 {
		t.Errorf("stage file: %v", p)
	}
	if p := Validate("a.yaml", []byte("hostname: x\n")); len(p) != 1 || !p[0].Warning || !strings.Contains(p[0].Msg, "header") {
		t.Errorf("missing header: %v", p)
	}
	if p := Validate("a.yaml", []byte("#cloud-config\nhostname: x\n  bad: [\n")); len(p) != 1 || p[0].Line != 3 || !strings.Contains(p[0].Msg, "not valid YAML") {
		t.Errorf("bad YAML: %v", p)
	}
}
