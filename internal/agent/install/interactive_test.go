package install

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/stages"
)

// The config interactive-install writes lands on /oem: the typed password
// must be in it only as a hash, one the users stage stores as it is.
func TestInteractiveConfigHashesPassword(t *testing.T) {
	const typed = "$ecret pass"
	data, err := Answers{Device: "/dev/vda", User: "ops", Password: typed}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), typed) {
		t.Fatalf("the typed password is in the config:\n%s", data)
	}
	var doc struct {
		Users []struct {
			Passwd string `yaml:"passwd"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Users) != 1 {
		t.Fatalf("config %s: %v", data, err)
	}
	hash := doc.Users[0].Passwd
	parts := strings.Split(hash, "$")
	if len(parts) != 4 || parts[1] != "6" {
		t.Fatalf("passwd %q is not a SHA-512 crypt hash", hash)
	}
	out, err := exec.Command("openssl", "passwd", "-6", "-salt", parts[2], typed).Output()
	if err != nil || strings.TrimSpace(string(out)) != hash {
		t.Errorf("passwd %q does not verify against the typed password (openssl: %q, %v)", hash, out, err)
	}

	// The node's users stage keeps the hash as it is.
	root := t.TempDir()
	for name, content := range map[string]string{"passwd": "root:x:0:0:root:/root:/bin/sh\n", "group": "root:x:0:\n", "shadow": "root:*:19000:0:99999:7:::\n"} {
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := stages.ParseSource("90_custom.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if err := (stages.Runner{Root: root}).RunStage(context.Background(), []stages.Source{src}, stages.UsersStage); err != nil {
		t.Fatal(err)
	}
	shadow, _ := os.ReadFile(filepath.Join(root, "etc/shadow"))
	if !strings.Contains(string(shadow), "\nops:"+hash+":") {
		t.Errorf("shadow does not hold the config's hash %q:\n%s", hash, shadow)
	}
}
