// Package firstboot is `kairos-agent start` on an installed node: it turns
// the cloud-config's k3s and k3s-agent blocks into the services' sysconfig
// files and enables them, once; the sentinel /usr/local/.kairos/deployed
// (on COS_PERSISTENT) records that, and removing it makes it run again.
package firstboot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// Services are the cloud-config blocks that deploy a service, with the
// k3s mode each runs.
var Services = []struct{ Key, Unit string }{{"k3s", "k3s"}, {"k3s-agent", "k3s-agent"}}

// Node is the installed system start works on.
type Node struct {
	Host *host.Host // host.System on a node: its root and the sentinel, Host.Deployed
	// Enable enables and starts a service (systemctl or rc-update).
	Enable func(unit string) error
	Log    io.Writer
}

func (n Node) path(p string) string { return filepath.Join(n.Host.Root, p) }

// Start deploys what the config asks for, unless already deployed.
func (n Node) Start(m cloudconfig.Merged) error {
	if _, err := os.Stat(n.Host.Deployed); err == nil {
		fmt.Fprintf(n.Log, "kairos-agent start: already deployed (remove %s to deploy again)\n", n.Host.Deployed)
		return nil
	}
	for _, s := range Services {
		block, _ := m.Get(s.Key)
		cfg, _ := block.(map[string]any)
		if !truthy(cfg["enabled"]) {
			continue
		}
		if _, err := os.Stat(n.path("/usr/bin/k3s")); err != nil {
			return fmt.Errorf("%s.enabled is set but this image has no /usr/bin/k3s: use a standard-variant image", s.Key)
		}
		data, err := Sysconfig(cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Key, err)
		}
		file := n.path("/etc/sysconfig/" + s.Unit)
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(file, data, 0o600); err != nil {
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

// Sysconfig renders a k3s block: K3S_ARGS from args, then env, in the
// quoting both systemd's EnvironmentFile and a POSIX shell (OpenRC) read.
func Sysconfig(cfg map[string]any) ([]byte, error) {
	var args []string
	switch a := cfg["args"].(type) {
	case nil:
	case []any:
		for _, v := range a {
			args = append(args, fmt.Sprint(v))
		}
	default:
		return nil, fmt.Errorf("args: a list of arguments is expected, not %v", a)
	}
	var b strings.Builder
	b.WriteString("# Written by kairos-agent start from the cloud-config.\n")
	b.WriteString("K3S_ARGS=" + quote(strings.Join(args, " ")) + "\n")
	if env, ok := cfg["env"].(map[string]any); ok {
		keys := make([]string, 0, len(env))
		for k := range env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteString(k + "=" + quote(fmt.Sprint(env[k])) + "\n")
		}
	}
	return []byte(b.String()), nil
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
	return `"` + r.Replace(s) + `"`
}

func truthy(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true" || b == "yes" || b == "on"
	}
	return false
}
