//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/kairos-io/kairos/tests/testca"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kairos-io/kairos/tests/registry"
)

// The upstream configuration language on a real node (issue 16): the
// standard install's cloud-config uses a templated hostname, github: keys
// served by a local HTTPS server, write_files, runcmd, sysctl, modules,
// after ordering and a run:// bundle from a local HTTPS registry. The node
// trusts the test's CA as a node trusts its company's: a file in
// /etc/ssl/certs, written by the initramfs stage; KAIROS_GITHUB_URL (a
// drop-in of the boot stage's service) sends github: to the local server.

// languageFixture is what the node reaches from the guest network.
type languageFixture struct {
	userData string // added to the install's cloud-config
	key      string // the key github:e2e-keys serves
}

func newLanguageFixture(t *testing.T) languageFixture {
	t.Helper()
	caPEM, certPEM, keyPEM, pool := testCA(t)

	// github: keys, over HTTPS, at the guest's 10.0.2.2.
	pub, _ := sshKey(t)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	must(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/e2e-keys.keys" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, pub)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	keysPort := l.Addr().(*net.TCPAddr).Port

	// The bundle: run.sh installs a tool and a service that runs once.
	reg := registry.StartTLS(t, registry.FreeAddr(t), certPEM, keyPEM, pool)
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "run.sh"), []byte(`#!/bin/sh
set -e
install -D -m 0755 e2e-bundle-tool /usr/local/bin/e2e-bundle-tool
install -m 0644 e2e-bundle.service /etc/systemd/system/e2e-bundle.service
systemctl daemon-reload
systemctl enable --now e2e-bundle.service
`), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "e2e-bundle-tool"), []byte("#!/bin/sh\necho bundle tool\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "e2e-bundle.service"), []byte(`[Unit]
Description=e2e bundle service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo bundle service ran > /run/e2e-bundle-service'
[Install]
WantedBy=multi-user.target
`), 0o644))
	registry.PushDir(t, dir, reg.Addr+"/e2e/bundle:v1", remote.WithTransport(reg.Client.Transport))
	_, regPort, _ := net.SplitHostPort(reg.Addr)

	indent := func(s string) string {
		return "            " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n            ")
	}
	userData := fmt.Sprintf(`name: e2e
hostname: metal-{{ trunc 4 .MachineID }}
ssh_authorized_keys:
  - github:e2e-keys
write_files:
  - path: /etc/e2e-write-files
    content: written by write_files
    permissions: "0640"
runcmd:
  - echo ran > /run/e2e-runcmd
bundles:
  - targets:
      - run://10.0.2.2:%s/e2e/bundle:v1
`, regPort)
	stages := fmt.Sprintf(`  initramfs:
    - name: the test's CA and key mirror
      files:
        - path: /etc/ssl/certs/kairos-e2e-ca.pem
          permissions: 0644
          content: |
%s
        - path: /etc/systemd/system/cos-setup-boot.service.d/e2e-keys.conf
          permissions: 0644
          content: |
            [Service]
            Environment=KAIROS_GITHUB_URL=https://10.0.2.2:%d
  boot.after:
    - name: two
      after: [{name: e2e.one}]
      commands: [echo two >> /run/e2e-order]
    - name: one
      sysctl:
        vm.max_map_count: "262144"
      modules: [br_netfilter]
      commands: [echo one >> /run/e2e-order]
    - name: three
      commands: [echo three >> /run/e2e-order]
`, indent(string(caPEM)), keysPort)
	return languageFixture{userData: userData + "\x00" + stages, key: pub}
}

// with adds the fixture's keys to a user-data: the top-level keys, and
// the stages into its stages mapping.
func (f languageFixture) with(userData string) string {
	top, stages, _ := strings.Cut(f.userData, "\x00")
	out := strings.Replace(userData, "stages:\n", "stages:\n"+stages, 1)
	return out + top
}

// checkLanguage checks the effects on the booted node.
func checkLanguage(t *testing.T, sh func(string) string, f languageFixture) {
	t.Helper()
	id := sh("cat /etc/machine-id")
	if got := sh("hostname"); got != "metal-"+id[:4] {
		t.Errorf("hostname %q, want metal-%s (machine id %s)", got, id[:4], id)
	}
	if got := sh("sudo cat /home/tester/.ssh/authorized_keys"); !strings.Contains(got, f.key) {
		t.Errorf("the github: key is not authorized:\n%s", got)
	}
	if got := sh("sudo stat -c %a /etc/e2e-write-files && sudo cat /etc/e2e-write-files"); got != "640\nwritten by write_files" {
		t.Errorf("write_files: %q", got)
	}
	if got := sh("cat /run/e2e-runcmd"); got != "ran" {
		t.Errorf("runcmd: %q", got)
	}
	if got := sh("cat /proc/sys/vm/max_map_count"); got != "262144" {
		t.Errorf("sysctl vm.max_map_count = %q", got)
	}
	if got := sh("grep -c '^br_netfilter ' /proc/modules || true"); got != "1" {
		t.Errorf("module br_netfilter not loaded")
	}
	if got := sh("cat /run/e2e-order"); got != "one\ntwo\nthree" {
		t.Errorf("step order %q", got)
	}
	// The bundle ran at the first boot, before the services.
	if got := sh("/usr/local/bin/e2e-bundle-tool 2>&1 || sudo journalctl -b -u kairos-agent --no-pager | grep -i bundle | tail -20"); got != "bundle tool" {
		t.Errorf("bundle tool: %q", got)
	}
	if got := sh("timeout 60 sh -c 'until test -s /run/e2e-bundle-service; do sleep 1; done'; cat /run/e2e-bundle-service; systemctl is-enabled e2e-bundle"); got != "bundle service ran\nenabled" {
		t.Errorf("bundle service: %q", got)
	}
	if got := sh("sudo kairos-agent validate /oem/90_custom.yaml; echo rc=$?"); !strings.HasSuffix(got, "rc=0") {
		t.Errorf("the installed config does not validate:\n%s", got)
	}
}

// testCA makes a CA and a certificate for 10.0.2.2 (the host, seen from
// the guest) and 127.0.0.1 (the host itself).
func testCA(t *testing.T) (caPEM, certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	ca := testca.New(t, "kairos e2e CA")
	certPEM, keyPEM = ca.Server(t, "10.0.2.2", "127.0.0.1")
	return ca.PEM, certPEM, keyPEM, ca.Pool
}
