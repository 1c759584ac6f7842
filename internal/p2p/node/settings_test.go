package node

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/p2p/cluster"
	"github.com/kairos-io/kairos/internal/p2p/token"
)

func parse(t *testing.T, doc string) *cloudconfig.Config {
	t.Helper()
	p, diags := cloudconfig.Parse("c.yaml", []byte("#cloud-config\n"+doc))
	if err := diags.Err(); err != nil {
		t.Fatal(err)
	}
	return p.Config
}

func newToken(t *testing.T) string {
	n, err := token.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return n.Encode()
}

// The environment variables validate accepts are the ones Read reads.
func TestEnvNamesAgree(t *testing.T) {
	if got := slices.Sorted(maps.Keys(Env)); !slices.Equal(got, cloudconfig.P2PEnv) {
		t.Errorf("node.Env %v, cloudconfig.P2PEnv %v", got, cloudconfig.P2PEnv)
	}
}

func TestReadDefaults(t *testing.T) {
	tok := newToken(t)
	s, err := Read(parse(t, "hostname: n1\np2p: {network_token: "+tok+"}"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Role != cluster.RoleAuto || !s.Auto || s.HA || s.Masters != 1 || s.MinimumNodes != 2 || !s.DHT ||
		!s.CreateVPN || !s.UseVPN || s.Interface != "edgevpn0" || s.Prefix != cluster.DefaultPrefix || s.MTU != 1420 || s.Hostname != "n1" {
		t.Errorf("defaults: %+v", s)
	}
}

func TestRead(t *testing.T) {
	tok := newToken(t)
	for _, c := range []struct {
		name, doc string
		env       map[string]string
		check     func(Settings) bool
		err       string
	}{
		{name: "HA with master_nodes", doc: "p2p: {network_token: " + tok + ", auto: {ha: {enable: true, master_nodes: 2}}}",
			check: func(s Settings) bool { return s.HA && s.Masters == 2 }},
		{name: "HA default size", doc: "p2p: {network_token: " + tok + ", auto: {ha: {enable: true}}}",
			check: func(s Settings) bool { return s.Masters == DefaultHAMasters }},
		{name: "forced role, auto off, no DHT", doc: "p2p: {network_token: " + tok + ", role: worker, auto: {enable: false}, disable_dht: true, minimum_nodes: 3}",
			check: func(s Settings) bool { return s.Role == "worker" && !s.Auto && !s.DHT && s.MinimumNodes == 3 }},
		{name: "vpn.env from the config", doc: "p2p: {network_token: " + tok + ", vpn: {env: {IFACE: mesh0, ADDRESS: 10.5.0.7/24, EDGEVPNMTU: '1300', EDGEVPNLISTENMADDRS: '/ip4/0.0.0.0/tcp/4001'}}}",
			check: func(s Settings) bool {
				return s.Interface == "mesh0" && s.Prefix == netip.MustParsePrefix("10.5.0.7/24") && s.MTU == 1300 && slices.Equal(s.Listen, []string{"/ip4/0.0.0.0/tcp/4001"})
			}},
		{name: "the service's environment wins", doc: "p2p: {network_token: " + tok + ", vpn: {env: {IFACE: mesh0}}}", env: map[string]string{"IFACE": "mesh1", "PATH": "/bin"},
			check: func(s Settings) bool { return s.Interface == "mesh1" && len(s.Warnings) == 0 }},
		{name: "token from the environment", doc: "hostname: x", env: map[string]string{"EDGEVPNTOKEN": tok},
			check: func(s Settings) bool { return s.Token == tok }},
		{name: "no VPN: node addresses", doc: "p2p: {network_token: " + tok + ", vpn: {create: false}}",
			check: func(s Settings) bool { return !s.CreateVPN && !s.UseVPN }},
		{name: "unknown variable warned", doc: "p2p: {network_token: " + tok + ", vpn: {env: {EDGEVPNLOWPROFILEVPN: 'true'}}}",
			check: func(s Settings) bool {
				return len(s.Warnings) == 1 && strings.Contains(s.Warnings[0], "EDGEVPNLOWPROFILEVPN")
			}},
		{name: "no token", doc: "p2p: {role: master}", err: "p2p.network_token is not set"},
		{name: "bad token", doc: "hostname: x", env: map[string]string{"EDGEVPNTOKEN": "bm90IGEgdG9rZW4="}, err: "p2p.network_token: "},
		{name: "bad interface", doc: "p2p: {network_token: " + tok + ", vpn: {env: {IFACE: ../x}}}", err: "is not an interface name"},
		{name: "bad address", doc: "p2p: {network_token: " + tok + ", vpn: {env: {ADDRESS: 10.1.0.1}}}", err: "ADDRESS"},
		{name: "bad bootstrap", doc: "p2p: {network_token: " + tok + ", vpn: {env: {EDGEVPNBOOTSTRAPPEERS: /ip4/1.2.3.4/tcp/1}}}", err: "/p2p/<peer id>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Read(parse(t, c.doc), c.env)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				if strings.Contains(err.Error(), tok) {
					t.Error("the error quotes the token")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(s) {
				t.Errorf("%+v", s)
			}
		})
	}
}

// The cloud-config's k3s blocks are merged over what the role gives: the
// user's args add, the user's env wins.
func TestSysconfigMergesTheBlocks(t *testing.T) {
	s, err := Read(parse(t, "p2p: {network_token: "+newToken(t)+"}\nk3s: {args: [--disable=traefik], env: {K3S_TOKEN: mine}}\nk3s-agent: {args: [--node-label=a=b]}"), nil)
	if err != nil {
		t.Fatal(err)
	}
	self, master := netip.MustParseAddr("10.1.0.9"), netip.MustParseAddr("10.1.0.2")
	k, _ := cluster.K3sFor(cluster.RoleMaster, master, "edgevpn0", []netip.Addr{master}, "derived", false)
	got := string(Sysconfig(s, k))
	if !strings.Contains(got, `K3S_ARGS="--node-ip=10.1.0.2 --flannel-iface=edgevpn0 --tls-san=10.1.0.2 --disable=traefik"`) || !strings.Contains(got, `K3S_TOKEN="mine"`) {
		t.Errorf("master:\n%s", got)
	}
	k, _ = cluster.K3sFor(cluster.RoleWorker, self, "edgevpn0", []netip.Addr{master}, "derived", false)
	got = string(Sysconfig(s, k))
	if !strings.Contains(got, `--node-label=a=b"`) || !strings.Contains(got, `K3S_URL="https://10.1.0.2:6443"`) || !strings.Contains(got, `K3S_TOKEN="derived"`) {
		t.Errorf("worker:\n%s", got)
	}
}
