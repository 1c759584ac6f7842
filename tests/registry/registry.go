// Package registry runs a real OCI registry (Debian's docker-registry,
// distribution 2.x) on a loopback port for tests that push and pull images.
// QEMU guests reach it as 10.0.2.2:<port>.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// DefaultAddr is the address the project's buildkitd.toml treats as plain
// HTTP (see internal/buildkitd); tests that hand the registry to buildkitd
// must use it.
const DefaultAddr = "127.0.0.1:5000"

// Registry is a running registry.
type Registry struct {
	Addr string // host:port
	// Client talks to it (trusting its CA, for StartTLS).
	Client *http.Client
	cmd    *exec.Cmd
}

// Start runs docker-registry on addr with its storage in a test temporary
// directory, waits until it answers, and stops it when the test ends. A
// missing binary or a busy port fails the test with the reason.
func Start(t testing.TB, addr string) *Registry {
	t.Helper()
	return start(t, addr, "", "")
}

// StartTLS is Start serving HTTPS with the PEM certificate and key (a
// test CA's: the guest trusts it, as a node trusts its company's).
func StartTLS(t testing.TB, addr string, certPEM, keyPEM []byte, roots *x509.CertPool) *Registry {
	t.Helper()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, addr, cert, key, roots)
	return r
}

// StartAuth is Start asking for user and password (htpasswd, bcrypt), as
// a company's registry does: pushes and pulls need the credentials.
func StartAuth(t testing.TB, addr, user, password string) *Registry {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(file, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startConf(t, addr, "", "", fmt.Sprintf("auth:\n  htpasswd:\n    realm: kairos-test\n    path: %s\n", file))
}

func start(t testing.TB, addr, cert, key string, roots ...*x509.CertPool) *Registry {
	t.Helper()
	return startConf(t, addr, cert, key, "", roots...)
}

func startConf(t testing.TB, addr, cert, key, extra string, roots ...*x509.CertPool) *Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("docker-registry not found (apt-get install docker-registry; ./earthly.sh installs it): %v", err)
	}
	if l, err := net.Listen("tcp", addr); err != nil {
		t.Fatalf("registry address %s is busy: %v", addr, err)
	} else {
		l.Close()
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
%shttp:
  addr: %s
`, filepath.Join(dir, "data"), extra, addr)
	client, scheme := http.DefaultClient, "http"
	if cert != "" {
		conf += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots[0]}}}
		scheme = "https"
	}
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting docker-registry: %v", err)
	}
	r := &Registry{Addr: addr, cmd: cmd, Client: client}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := client.Get(scheme + "://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || extra != "" && resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		select {
		case <-ctx.Done():
			log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry on %s did not answer within 30s: %v\n%s", addr, err, log)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Tags lists the tags of a repository.
func (r *Registry) Tags(repo string) (*http.Response, error) {
	return http.Get("http://" + r.Addr + "/v2/" + repo + "/tags/list")
}

// FreeAddr returns a loopback address with a port free right now, for tests
// whose registry needs no buildkitd configuration.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
