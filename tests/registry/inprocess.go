package registry

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// InProcess serves go-containerregistry's in-memory registry over plain
// HTTP on a loopback port for the duration of the test and returns its
// host:port. Unlike Start it needs no docker-registry binary; it is what
// tests of the plain-HTTP policy use together with RouteAll.
func InProcess(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// RouteAll makes every go-containerregistry connection of the test dial
// addr, whatever host the reference names, so that a registry on loopback
// can be reached as e.g. 10.20.30.40:5000 or registry.local:5000: names for
// which go-containerregistry would fall back to plain HTTP, and which a
// test cannot otherwise point at a local server. It swaps
// remote.DefaultTransport (the base every remote operation wraps, read at
// each call) until the test ends, so tests using it must not run in
// parallel. The returned counter counts the requests that reached the base
// transport over plain HTTP, i.e. that the code under test let through.
func RouteAll(t testing.TB, addr string) *atomic.Int32 {
	t.Helper()
	base := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout: 5 * time.Second,
	}
	counted := &countPlain{inner: base}
	saved := remote.DefaultTransport
	remote.DefaultTransport = counted
	t.Cleanup(func() {
		remote.DefaultTransport = saved
		base.CloseIdleConnections()
	})
	return &counted.plain
}

type countPlain struct {
	inner http.RoundTripper
	plain atomic.Int32
}

func (c *countPlain) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		c.plain.Add(1)
	}
	return c.inner.RoundTrip(r)
}
