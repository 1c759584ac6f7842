// Package firstboot is `kairos-agent start` on an installed node: it
// installs the config's bundles (install.bundles, then bundles), then turns
// the k3s and k3s-agent blocks into the services' sysconfig files and
// enables them, once; the sentinel /usr/local/.kairos/deployed (on
// COS_PERSISTENT) records that, and removing it makes it run again.
package firstboot

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/safefile"
)

// Services are the cloud-config blocks that deploy a service: k3s runs
// the server, k3s-agent the agent.
var Services = []struct {
	Key, Unit string
	Block     func(c *cloudconfig.Config) cloudconfig.Kubernetes
}{
	{"k3s", "k3s", func(c *cloudconfig.Config) cloudconfig.Kubernetes { return c.K3s }},
	{"k3s-agent", "k3s-agent", func(c *cloudconfig.Config) cloudconfig.Kubernetes { return c.K3sAgnt }},
}

// Node is the installed system start works on.
type Node struct {
	Host *host.Host // host.System on a node: its root and the sentinel, Host.Deployed
	// Enable enables and starts a service (systemctl or rc-update).
	Enable func(unit string) error
	// Bundle installs one bundle (bundle.Installer.Install on a node).
	Bundle func(ctx context.Context, b cloudconfig.Bundle) error
	Log    io.Writer
}

func (n Node) path(p string) string { return filepath.Join(n.Host.Root, p) }

// Start deploys what the config asks for, unless already deployed.
func (n Node) Start(ctx context.Context, m cloudconfig.Merged) error {
	if _, err := os.Stat(n.Host.Deployed); err == nil {
		fmt.Fprintf(n.Log, "kairos-agent start: already deployed (remove %s to deploy again)\n", n.Host.Deployed)
		return nil
	}
	c := m.Config()
	// Bundles first, as upstream: a bundle may bring what the services
	// need. A failed bundle is reported and the rest go on, unless
	// fail_on_bundles_errors: then start fails and runs again next boot.
	for _, b := range append(slices.Clone(c.Install.Bundles), c.Bundles...) {
		if err := n.Bundle(ctx, b); err != nil {
			if c.FailOnBundlesErrors {
				return fmt.Errorf("%w (fail_on_bundles_errors: nothing more is deployed; start runs again at the next boot)", err)
			}
			fmt.Fprintf(n.Log, "kairos-agent start: %v (going on: fail_on_bundles_errors is not set)\n", err)
		}
	}
	if c.P2P.NetworkToken != "" {
		// The mesh decides the roles: its service writes the k3s
		// configuration (the k3s blocks merged in) once elected.
		if err := safefile.Dir(n.Host.Root, "/etc/systemd/system.conf.d", 0o755, -1, -1); err != nil {
			return err
		}
		if err := safefile.WriteFile(n.Host.Root, MeshEnvFile, MeshEnv(c), 0o600, -1, -1); err != nil {
			return err
		}
		fmt.Fprintf(n.Log, "kairos-agent start: %s written; enabling %s (the P2P mesh decides this node's role)\n", MeshEnvFile, MeshUnit)
		if err := n.Enable(MeshUnit); err != nil {
			return fmt.Errorf("enabling %s: %w", MeshUnit, err)
		}
	}
	for _, s := range Services {
		k := s.Block(c)
		if c.P2P.NetworkToken != "" {
			continue
		}
		if !k.Enabled {
			continue
		}
		if _, err := os.Stat(n.path("/usr/bin/k3s")); err != nil {
			return fmt.Errorf("%s.enabled is set but this image has no /usr/bin/k3s: use a standard-variant image", s.Key)
		}
		data := Sysconfig(k, nil, nil)
		// 0600 whatever an earlier file's mode (it holds the token), and
		// never through a link.
		if err := safefile.WriteFile(n.Host.Root, "/etc/sysconfig/"+s.Unit, data, 0o600, -1, -1); err != nil {
			return err
		}
		fmt.Fprintf(n.Log, "kairos-agent start: /etc/sysconfig/%s written; enabling %s\n", s.Unit, s.Unit)
		if err := n.Enable(s.Unit); err != nil {
			return fmt.Errorf("enabling %s: %w", s.Unit, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(n.Host.Deployed), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(n.Host.Deployed, nil, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(n.Log, "kairos-agent start: deployed (%s)\n", n.Host.Deployed)
	return nil
}

// Sysconfig renders a k3s block: K3S_ARGS, then the environment, in the
// quoting both systemd's EnvironmentFile and a POSIX shell (OpenRC) read.
// The block's args and env add to what Kairos itself passes (defaults:
// none yet, the mesh will add its own), or replace it with replace_args
// and replace_env, as upstream.
func Sysconfig(k cloudconfig.Kubernetes, defaultArgs []string, defaultEnv map[string]string) []byte {
	args := append(slices.Clone(defaultArgs), k.Args...)
	if k.ReplaceArgs {
		args = k.Args
	}
	env := maps.Clone(defaultEnv)
	if env == nil || k.ReplaceEnv {
		env = map[string]string{}
	}
	maps.Copy(env, k.Env)
	var b strings.Builder
	b.WriteString("# Written by kairos-agent start from the cloud-config.\n")
	b.WriteString("K3S_ARGS=" + quote(strings.Join(args, " ")) + "\n")
	for _, key := range slices.Sorted(maps.Keys(env)) {
		b.WriteString(key + "=" + quote(env[key]) + "\n")
	}
	return []byte(b.String())
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
	return `"` + r.Replace(s) + `"`
}

// The P2P mesh's service and its environment file (the contract's names).
const (
	MeshUnit    = "edgevpn@kairos"
	MeshEnvFile = "/etc/systemd/system.conf.d/edgevpn-kairos.env"
)

// MeshEnv is the mesh service's environment: the token and the config's
// p2p.vpn.env, in the quoting systemd's EnvironmentFile and a POSIX shell
// both read. It holds the token: written 0600.
func MeshEnv(c *cloudconfig.Config) []byte {
	env := maps.Clone(c.P2P.VPN.Env)
	if env == nil {
		env = map[string]string{}
	}
	env["EDGEVPNTOKEN"] = c.P2P.NetworkToken
	var b strings.Builder
	b.WriteString("# Written by kairos-agent start from the cloud-config's p2p block.\n")
	for _, k := range slices.Sorted(maps.Keys(env)) {
		b.WriteString(k + "=" + quote(strings.ReplaceAll(env[k], "\n", " ")) + "\n")
	}
	return []byte(b.String())
}
