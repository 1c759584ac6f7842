package rootfs

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The registry policy of every pull and listing (docker-image:// sources,
// the agent's oci: sources, `upgrade list-releases`): HTTPS only, unless
// --allow-insecure-registries (insecure) says otherwise.
//
// go-containerregistry alone is laxer: for registries it guesses are
// local (RFC 1918 addresses, *.local names, loopback) it pings HTTPS and
// falls back to plain HTTP when that fails, so anyone who can make HTTPS
// fail on such a network (or answer as 10.x or foo.local) serves the node
// its OS over an unauthenticated channel, credentials included. So without
// insecure every plain-HTTP request is refused, at the transport, which
// also covers token endpoints and redirects to blob storage.
//
// Loopback (127.0.0.0/8, ::1, localhost) keeps plain HTTP without the flag,
// as in Docker's defaults: traffic to it never leaves the machine, and a
// local registry (a mirror, the tests' registries) is commonly plain.

// NameOptions are the options to parse a registry reference with.
func NameOptions(insecure bool) []name.Option {
	if insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// RemoteOptions are the options of a registry operation: auth from the
// docker config, and the plain-HTTP policy above.
func RemoteOptions(ctx context.Context, insecure bool) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if !insecure {
		// remote.DefaultTransport is read here, per operation, not
		// captured once, so that whatever sets it (tests) is honoured.
		opts = append(opts, remote.WithTransport(httpsOnly{remote.DefaultTransport}))
	}
	return opts
}

// httpsOnly refuses plain-HTTP requests except to loopback.
type httpsOnly struct{ inner http.RoundTripper }

func (t httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" && !IsLoopback(r.URL.Hostname()) {
		// A RoundTripper must close the body, even when it fails.
		if r.Body != nil {
			r.Body.Close()
		}
		// The caller (net/http) prefixes the method and URL.
		return nil, fmt.Errorf("refusing plain HTTP to registry host %s: pass --allow-insecure-registries to allow it", r.URL.Host)
	}
	return t.inner.RoundTrip(r)
}

// IsLoopback tells a loopback host by its name alone, not by resolving
// it: a name that resolves to 127.0.0.1 now may not when dialled.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
