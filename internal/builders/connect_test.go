package builders

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kairos-io/kairos/tests/bkdtest"
	"github.com/kairos-io/kairos/tests/testca"
)

// A real buildkitd on TCP with mutual TLS: the builder connects with the
// client certificate, learns its platforms from its workers, and is
// refused without a certificate or with another CA's.
func TestConnectMutualTLS(t *testing.T) {
	ca := testca.New(t, "kairos builders CA")
	d := bkdtest.Start(t, bkdtest.Options{TLS: ca})
	ctx := context.Background()

	b, err := Connect(ctx, Spec{Name: "tls", Addr: d.Addr, CA: d.CA, Cert: d.Cert, Key: d.Key}, t.TempDir())
	if err != nil {
		t.Fatalf("connecting with the client certificate: %v", err)
	}
	defer b.Client.Close()
	host := platforms.Normalize(platforms.DefaultSpec())
	if !b.Builds(host) || b.Jobs != 1 {
		t.Errorf("builder platforms %s (jobs %d): want %s from its workers and 1 job", b.PlatformNames(), b.Jobs, platforms.Format(host))
	}
	if b.Builds(ocispec.Platform{OS: "linux", Architecture: "riscv64"}) && !strings.Contains(b.PlatformNames(), "riscv64") {
		t.Errorf("Builds(riscv64) without the daemon reporting it")
	}

	noCert := Spec{Name: "nocert", Addr: d.Addr, CA: d.CA}
	if b, err := connectQuick(noCert); err == nil {
		b.Client.Close()
		t.Errorf("a client without a certificate was let in")
	}
	other := testca.New(t, "another CA")
	oc, ok := other.Client(t, "intruder")
	dir := t.TempDir()
	_, cert, key := other.Files(t, dir, "intruder", oc, ok)
	if b, err := connectQuick(Spec{Name: "intruder", Addr: d.Addr, CA: d.CA, Cert: cert, Key: key}); err == nil {
		b.Client.Close()
		t.Errorf("a client certificate of another CA was let in")
	}
	if b, err := connectQuick(Spec{Name: "plain", Addr: d.Addr}); err == nil {
		b.Client.Close()
		t.Errorf("a client without TLS was let in")
	}
}

// connectQuick gives up after 3 s: a refused client would otherwise be
// retried for Connect's full timeout.
func connectQuick(s Spec) (*Builder, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return Connect(ctx, s, "")
}
