package stages

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kairosHash is a SHA-512 crypt hash (of "hunter2"), stored as it is.
const kairosHash = "$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJoCT6dfnj."

func TestUsersAndDNS(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, "/etc", "passwd", "root:x:0:0:root:/root:/bin/sh\nkairos:x:1000:1000:kairos:/home/kairos:/bin/sh\n")
	writeConfig(t, root, "/etc", "group", "root:x:0:\nkairos:x:1000:\nwheel:x:10:root\n")
	writeConfig(t, root, "/etc", "shadow", "root:*:19000:0:99999:7:::\nkairos:$6$old$hash:19000:0:99999:7:::\n")
	os.Chmod(filepath.Join(root, "etc/shadow"), 0o640)
	writeConfig(t, root, "/oem", "90_custom.yaml", `#cloud-config
users:
  - name: tester
    passwd: s3cret
    groups: [wheel, docker]
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3Nza tester@example
      - github:tester
  - name: kairos
    passwd: "`+kairosHash+`"
stages:
  boot:
    - users:
        svc:
          lock_passwd: true
          homedir: /var/lib/svc
      dns:
        nameservers: [10.0.2.3, 1.1.1.1]
        search: [example.org]
`)
	sources, errs := Load(root, []string{"/oem"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	r := Runner{Root: root}
	if err := r.RunStage(context.Background(), sources, UsersStage); err != nil {
		t.Fatal(err)
	}
	if err := r.RunStage(context.Background(), sources, "boot"); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	passwd, group, shadow := read("etc/passwd"), read("etc/group"), read("etc/shadow")
	for _, want := range []string{"tester:x:1001:1001:tester:/home/tester:/bin/sh\n", "svc:x:1002:1003:svc:/var/lib/svc:/bin/sh\n", "kairos:x:1000:1000:"} {
		if !strings.Contains(passwd, want) {
			t.Errorf("passwd lacks %q:\n%s", want, passwd)
		}
	}
	for _, want := range []string{"wheel:x:10:root,tester\n", "docker:x:", ":tester\n", "tester:x:1001:"} {
		if !strings.Contains(group, want) {
			t.Errorf("group lacks %q:\n%s", want, group)
		}
	}
	if !strings.Contains(shadow, "kairos:"+kairosHash+":") || !strings.Contains(shadow, "svc:!:") {
		t.Errorf("shadow:\n%s", shadow)
	}
	// The plain password is stored hashed, and the hash checks with openssl.
	var hash string
	for _, l := range strings.Split(shadow, "\n") {
		if f := strings.Split(l, ":"); f[0] == "tester" {
			hash = f[1]
		}
	}
	if strings.Contains(shadow, "s3cret") || !strings.HasPrefix(hash, "$6$") {
		t.Fatalf("tester's password not hashed: %q", hash)
	}
	salt := strings.Split(hash, "$")[2]
	out, err := exec.Command("openssl", "passwd", "-6", "-salt", salt, "s3cret").Output()
	if err != nil || strings.TrimSpace(string(out)) != hash {
		t.Errorf("openssl hash %q (%v), stored %q", out, err, hash)
	}
	if st, _ := os.Stat(filepath.Join(root, "etc/shadow")); st.Mode().Perm() != 0o640 {
		t.Errorf("shadow mode %v", st.Mode())
	}
	if keys := read("home/tester/.ssh/authorized_keys"); keys != "ssh-ed25519 AAAAC3Nza tester@example\n" {
		t.Errorf("authorized_keys %q", keys)
	}
	if resolv := read("etc/resolv.conf"); !strings.Contains(resolv, "nameserver 10.0.2.3\nnameserver 1.1.1.1\nsearch example.org\n") {
		t.Errorf("resolv.conf %q", resolv)
	}
	// Running again changes nothing but the fresh hash's salt.
	if err := r.RunStage(context.Background(), sources, UsersStage); err != nil {
		t.Fatal(err)
	}
	if p := read("etc/passwd"); p != passwd {
		t.Errorf("second run changed passwd:\n%s", p)
	}
}
