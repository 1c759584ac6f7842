// Package cosigntool drives the reference cosign CLI in tests: the one
// ./earthly.sh +test builds from tools/cosign ($KAIROS_COSIGN), else the
// one on PATH. Keys are made with a fixed password (COSIGN_PASSWORD) in a
// test directory; transparency logs are never used (keyed, offline).
package cosigntool

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Password protects the test keys.
const Password = "e2e-secret"

// Path is the cosign binary; the test fails when there is none.
func Path(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KAIROS_COSIGN"); p != "" {
		return p
	}
	p, err := exec.LookPath("cosign")
	if err != nil {
		t.Fatal("cosign not found: ./earthly.sh +test builds it from tools/cosign and sets KAIROS_COSIGN")
	}
	return p
}

// Run runs cosign in dir with the test password, failing the test on error.
func Run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(Path(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+Password, "COSIGN_YES=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cosign %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// KeyPair makes cosign.key and cosign.pub in a new directory.
func KeyPair(t testing.TB) (dir string) {
	t.Helper()
	dir = t.TempDir()
	Run(t, dir, "generate-key-pair")
	return dir
}

// Pub is the public key file of a KeyPair directory.
func Pub(dir string) string { return filepath.Join(dir, "cosign.pub") }

// Sign signs ref (repo@digest) with the key pair in dir, as `kairos
// release --sign-key` does.
func Sign(t testing.TB, dir, ref string) {
	t.Helper()
	Run(t, dir, "sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry", "--yes", ref)
}
