// Package builders is the fleet of BuildKit daemons a release runs on:
// each named by `--builder name=<address>[,platforms=...][,ca=...,cert=...,key=...]`
// (or $BUILDKIT_HOST, or the private local daemon), connected to with
// mutual TLS when certificates are given, and the matrix entries handed
// to the builders of their platform, several at once. The scheduling is
// only "which daemon takes the next entry": the builds themselves, their
// caches and their pushes are BuildKit's.
package builders

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kairos-io/kairos/internal/buildkitd"
)

// Spec is one builder as the user names it.
type Spec struct {
	// Name is what progress and the summary call it.
	Name string
	// Addr is the daemon's address: unix://, tcp://, docker-container://...
	// (whatever the BuildKit client dials). Empty means the private local
	// daemon under the cache directory.
	Addr string
	// Platforms are what it builds; empty means what its workers report.
	Platforms []ocispec.Platform
	// CA, Cert and Key are PEM files for mutual TLS: the CA that signed
	// the daemon's certificate, and the client's certificate and key.
	CA, Cert, Key string
	// ServerName is the name checked on the daemon's certificate (default:
	// the address's host).
	ServerName string
	// Jobs is how many entries it builds at once (default 1).
	Jobs int
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Parse reads `name=<address>[,platforms=<p1>,...][,ca=<file>][,cert=<file>][,key=<file>][,server-name=<name>][,jobs=<n>]`,
// comma-separated as CSV (quote a field holding commas:
// `"platforms=linux/amd64,linux/arm64"`; platforms may also be joined by
// ';' or repeated).
func Parse(s string) (Spec, error) {
	r := csv.NewReader(strings.NewReader(s))
	r.TrimLeadingSpace = true
	fields, err := r.Read()
	if err != nil || len(fields) == 0 {
		return Spec{}, fmt.Errorf("builder %q: want name=<address>[,platforms=...][,ca=,cert=,key=]: %v", s, err)
	}
	name, addr, ok := strings.Cut(fields[0], "=")
	if !ok || addr == "" {
		return Spec{}, fmt.Errorf("builder %q: the first field must be name=<address> (e.g. arm=tcp://10.0.0.5:1234)", s)
	}
	if !nameRe.MatchString(name) {
		return Spec{}, fmt.Errorf("builder %q: name %q must be letters, digits, '.', '_', '-'", s, name)
	}
	sp := Spec{Name: name, Addr: addr}
	platformList := func(v string) error {
		for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
			pl, err := platforms.Parse(strings.TrimSpace(p))
			if err != nil {
				return fmt.Errorf("builder %s: platform %q: %w", name, p, err)
			}
			sp.Platforms = append(sp.Platforms, platforms.Normalize(pl))
		}
		return nil
	}
	last := ""
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			// csv splits "platforms=linux/amd64,linux/arm64" unquoted:
			// a bare platform after platforms= continues the list.
			if last == "platforms" {
				if err := platformList(f); err != nil {
					return Spec{}, err
				}
				continue
			}
			return Spec{}, fmt.Errorf("builder %s: %q is not key=value", name, f)
		}
		last = k
		switch k {
		case "platforms", "platform":
			last = "platforms"
			if err := platformList(v); err != nil {
				return Spec{}, err
			}
		case "ca", "cacert":
			sp.CA = v
		case "cert":
			sp.Cert = v
		case "key":
			sp.Key = v
		case "server-name", "servername":
			sp.ServerName = v
		case "jobs":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 64 {
				return Spec{}, fmt.Errorf("builder %s: jobs=%q: want 1 to 64", name, v)
			}
			sp.Jobs = n
		default:
			return Spec{}, fmt.Errorf("builder %s: unknown option %q (platforms, ca, cert, key, server-name, jobs)", name, k)
		}
	}
	if (sp.Cert == "") != (sp.Key == "") {
		return Spec{}, fmt.Errorf("builder %s: cert and key go together", name)
	}
	if (sp.Cert != "" || sp.ServerName != "") && sp.CA == "" {
		return Spec{}, fmt.Errorf("builder %s: TLS needs ca= (the CA that signed the daemon's certificate)", name)
	}
	if sp.CA != "" && !strings.HasPrefix(sp.Addr, "tcp://") {
		return Spec{}, fmt.Errorf("builder %s: TLS options need a tcp:// address, not %s", name, sp.Addr)
	}
	for _, f := range []string{sp.CA, sp.Cert, sp.Key} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return Spec{}, fmt.Errorf("builder %s: %w", name, err)
		}
	}
	return sp, nil
}

// String is the spec without its file names: what logs show.
func (s Spec) String() string {
	tls := ""
	if s.CA != "" {
		tls = " (TLS"
		if s.Cert != "" {
			tls += ", client certificate"
		}
		tls += ")"
	}
	addr := s.Addr
	if addr == "" {
		addr = "local daemon"
	}
	return s.Name + "=" + addr + tls
}

// Default is the builder when none is named: $BUILDKIT_HOST, else the
// private local daemon.
func Default() Spec {
	return Spec{Name: "default", Addr: os.Getenv("BUILDKIT_HOST")}
}

// Builder is a connected daemon.
type Builder struct {
	Spec
	Client *client.Client
}

// Connect dials the daemon (starting the private one when Addr is empty)
// and, when the spec names no platforms, asks its workers for theirs.
func Connect(ctx context.Context, s Spec, cacheDir string) (*Builder, error) {
	var c *client.Client
	var err error
	if s.Addr == "" {
		c, err = buildkitd.Connect(ctx, buildkitd.Daemon{StateDir: filepath.Join(cacheDir, "buildkit")})
	} else {
		var opts []client.ClientOpt
		if s.CA != "" {
			server := s.ServerName
			if server == "" {
				server = hostOf(s.Addr)
			}
			opts = append(opts, client.WithServerConfig(server, s.CA))
		}
		if s.Cert != "" {
			opts = append(opts, client.WithCredentials(s.Cert, s.Key))
		}
		c, err = buildkitd.Dial(ctx, s.Addr, 10*time.Second, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("builder %s: %w", s, err)
	}
	b := &Builder{Spec: s, Client: c}
	if b.Jobs == 0 {
		b.Jobs = 1
	}
	if len(b.Platforms) == 0 {
		ws, err := c.ListWorkers(ctx)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("builder %s: listing its workers: %w", s, err)
		}
		for _, w := range ws {
			for _, p := range w.Platforms {
				p = platforms.Normalize(p)
				if !slices.ContainsFunc(b.Platforms, func(q ocispec.Platform) bool { return platforms.Only(q).Match(p) && platforms.Only(p).Match(q) }) {
					b.Platforms = append(b.Platforms, p)
				}
			}
		}
		if len(b.Platforms) == 0 {
			c.Close()
			return nil, fmt.Errorf("builder %s: its workers report no platform", s)
		}
	}
	return b, nil
}

// Builds says whether the builder builds for p.
func (b *Builder) Builds(p ocispec.Platform) bool {
	want := platforms.Normalize(p)
	for _, q := range b.Platforms {
		if q.OS == want.OS && q.Architecture == want.Architecture && (want.Variant == "" || q.Variant == want.Variant) {
			return true
		}
	}
	return false
}

// PlatformNames lists the builder's platforms as text.
func (b *Builder) PlatformNames() string {
	var s []string
	for _, p := range b.Platforms {
		s = append(s, platforms.Format(p))
	}
	return strings.Join(s, ",")
}

func hostOf(addr string) string {
	rest := addr
	if _, after, ok := strings.Cut(addr, "://"); ok {
		rest = after
	}
	host, _, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

// ErrNoBuilder is an entry no builder can take.
var ErrNoBuilder = errors.New("no builder for this platform")
