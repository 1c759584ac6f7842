// Package node is `kairos-agent p2p run`: a node of the mesh. It reads
// what the cloud-config's p2p block asks (Settings), keeps the node's
// identity, VPN address and role under /usr/local/.kairos/p2p (State),
// joins the mesh, gossips its ledger entry, takes its address and role as
// package cluster decides them from the ledger, carries the VPN, and
// writes the k3s service's configuration the role calls for (Deploy).
package node

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/p2p/cluster"
	"github.com/kairos-io/kairos/internal/p2p/dns"
	"github.com/kairos-io/kairos/internal/p2p/mesh"
	"github.com/kairos-io/kairos/internal/p2p/token"
	"github.com/kairos-io/kairos/internal/p2p/vpn"
)

// Env are the variables of the mesh service's environment
// (p2p.vpn.env, /etc/systemd/system.conf.d/edgevpn-kairos.env) this agent
// reads, by upstream's (EdgeVPN's) names; any other is reported and left.
var Env = map[string]string{
	"EDGEVPNTOKEN":          "the network token, when the config has none",
	"IFACE":                 "the VPN interface's name (default " + vpn.DefaultInterface + ")",
	"ADDRESS":               "the VPN's network (default " + cluster.DefaultPrefix.String() + "); an address in it is claimed first",
	"EDGEVPNMTU":            "the VPN interface's MTU (default " + strconv.Itoa(vpn.DefaultMTU) + ")",
	"EDGEVPNBOOTSTRAPPEERS": "peers to start from, multiaddrs with /p2p/<id>, comma-separated",
	"EDGEVPNLISTENMADDRS":   "addresses to listen on, multiaddrs, comma-separated (default: TCP on every interface, any port)",
	"EDGEVPNDHT":            "false turns the DHT off (as p2p.disable_dht)",
	"DNSADDRESS":            "where the mesh's DNS server answers, with p2p.dns (default " + dns.DefaultListen + ")",
	"DNSFORWARD":            "false: the DNS server answers the mesh's names only (default true: the rest goes to the node's resolvers)",
	"DNSFORWARDSERVER":      "the resolvers asked the rest, host:port, comma-separated (default: those of /etc/resolv.conf)",
}

// DefaultMinimumNodes is how many nodes an automatic cluster waits for
// before electing, as upstream.
const DefaultMinimumNodes = 2

// DefaultHAMasters is the control plane's size with HA on and no
// master_nodes: three, the smallest etcd quorum that survives a loss.
const DefaultHAMasters = 3

// Settings are what a node of the mesh runs with.
type Settings struct {
	Network   token.Network
	Token     string // as given: what k3s's cluster token is derived from
	NetworkID string
	Hostname  string

	// Role is forced when not auto: master, worker or none.
	Role string
	// Auto elects roles from the ledger (p2p.auto.enable, on by default).
	Auto         bool
	HA           bool
	Masters      int // the control plane's size
	MinimumNodes int

	DHT       bool
	Bootstrap []peer.AddrInfo
	Listen    []string

	// CreateVPN brings up the TUN interface; UseVPN has k3s use its
	// addresses (otherwise the nodes' own).
	CreateVPN bool
	UseVPN    bool
	Interface string
	Prefix    netip.Prefix // the VPN's network; Prefix.Addr() is claimed first when it is not the network address
	MTU       int

	// DNS runs the mesh's name server on DNSListen and points the node's
	// resolv.conf at it; DNSForward are the resolvers asked the rest
	// (empty: the node's own), none when !DNSForwarding.
	DNS           bool
	DNSListen     string
	DNSForward    []string
	DNSForwarding bool

	Debug bool

	// K3s and K3sAgent are the cloud-config's blocks, merged over what
	// the role gives (user values win).
	K3s, K3sAgent cloudconfig.Kubernetes

	// Warnings are what the settings left unused, to log.
	Warnings []string
}

// Enabled says whether a config starts the mesh: it has a network token.
func Enabled(c *cloudconfig.Config, env map[string]string) bool {
	return c.P2P.NetworkToken != "" || env["EDGEVPNTOKEN"] != ""
}

// Read makes the settings from a node's merged config and the service's
// environment (which wins over p2p.vpn.env).
func Read(c *cloudconfig.Config, env map[string]string) (Settings, error) {
	p := c.P2P
	e := maps.Clone(p.VPN.Env)
	if e == nil {
		e = map[string]string{}
	}
	for k, v := range env {
		if _, ok := Env[k]; ok && v != "" {
			e[k] = v
		}
	}
	s := Settings{
		Token:         p.NetworkToken,
		NetworkID:     p.NetworkID,
		Hostname:      c.Hostname,
		Role:          p.Role,
		Auto:          p.Auto.Enable == nil || *p.Auto.Enable,
		HA:            p.Auto.HA.Enable != nil && *p.Auto.HA.Enable,
		MinimumNodes:  p.MinimumNodes,
		DHT:           !p.DisableDHT,
		CreateVPN:     p.VPN.Create == nil || *p.VPN.Create,
		UseVPN:        p.VPN.Use == nil || *p.VPN.Use,
		Interface:     vpn.DefaultInterface,
		Prefix:        cluster.DefaultPrefix,
		MTU:           vpn.DefaultMTU,
		Debug:         p.LogLevel == "debug",
		DNS:           p.DNS,
		DNSListen:     dns.DefaultListen,
		DNSForwarding: true,
		K3s:           c.K3s,
		K3sAgent:      c.K3sAgnt,
	}
	if s.Token == "" {
		s.Token = e["EDGEVPNTOKEN"]
	}
	if s.Token == "" {
		return Settings{}, fmt.Errorf("p2p.network_token is not set")
	}
	var err error
	if s.Network, err = token.Parse(s.Token); err != nil {
		return Settings{}, fmt.Errorf("p2p.network_token: %w", err)
	}
	if s.Role == "" {
		s.Role = cluster.RoleAuto
	}
	if s.MinimumNodes <= 0 {
		s.MinimumNodes = DefaultMinimumNodes
	}
	s.Masters = 1
	if s.HA {
		s.Masters = DefaultHAMasters
		if p.Auto.HA.MasterNodes != nil {
			s.Masters = *p.Auto.HA.MasterNodes
		}
		if s.Masters < 1 {
			return Settings{}, fmt.Errorf("p2p.auto.ha.master_nodes: %d: at least 1", s.Masters)
		}
	}
	if !s.CreateVPN && s.UseVPN && p.VPN.Use != nil {
		return Settings{}, fmt.Errorf("p2p.vpn.use is true but p2p.vpn.create is false: there is no VPN to use")
	}
	if !s.CreateVPN {
		s.UseVPN = false
	}
	for _, k := range slices.Sorted(maps.Keys(e)) {
		v := e[k]
		switch k {
		case "EDGEVPNTOKEN":
		case "IFACE":
			if len(v) == 0 || len(v) > 15 || strings.ContainsAny(v, "/ \t\n:") {
				return Settings{}, fmt.Errorf("p2p.vpn.env IFACE: %q is not an interface name", v)
			}
			s.Interface = v
		case "ADDRESS":
			pfx, err := netip.ParsePrefix(v)
			if err != nil || !pfx.Addr().Is4() || pfx.Bits() > 30 {
				return Settings{}, fmt.Errorf("p2p.vpn.env ADDRESS: %q is not an IPv4 address with a prefix of at most /30 (like 10.1.0.1/24)", v)
			}
			s.Prefix = pfx
		case "EDGEVPNMTU":
			n, err := strconv.Atoi(v)
			if err != nil || n < 576 || n > 9000 {
				return Settings{}, fmt.Errorf("p2p.vpn.env EDGEVPNMTU: %q is not an MTU from 576 to 9000", v)
			}
			s.MTU = n
		case "EDGEVPNBOOTSTRAPPEERS":
			if s.Bootstrap, err = mesh.ParseBootstrap(splitList(v)); err != nil {
				return Settings{}, fmt.Errorf("p2p.vpn.env EDGEVPNBOOTSTRAPPEERS: %w", err)
			}
		case "EDGEVPNLISTENMADDRS":
			s.Listen = splitList(v)
		case "DNSADDRESS":
			if _, err := netip.ParseAddrPort(v); err != nil {
				return Settings{}, fmt.Errorf("p2p.vpn.env DNSADDRESS: %q is not an address:port", v)
			}
			s.DNSListen = v
		case "DNSFORWARD":
			on, err := strconv.ParseBool(v)
			if err != nil {
				return Settings{}, fmt.Errorf("p2p.vpn.env DNSFORWARD: %q is not true or false", v)
			}
			s.DNSForwarding = on
		case "DNSFORWARDSERVER":
			for _, a := range splitList(v) {
				if _, err := netip.ParseAddrPort(a); err != nil {
					return Settings{}, fmt.Errorf("p2p.vpn.env DNSFORWARDSERVER: %q is not an address:port", a)
				}
				s.DNSForward = append(s.DNSForward, a)
			}
		case "EDGEVPNDHT":
			on, err := strconv.ParseBool(v)
			if err != nil {
				return Settings{}, fmt.Errorf("p2p.vpn.env EDGEVPNDHT: %q is not true or false", v)
			}
			s.DHT = s.DHT && on
		default:
			s.Warnings = append(s.Warnings, fmt.Sprintf("p2p.vpn.env %s is not read by this agent (it reads %s)", k, strings.Join(slices.Sorted(maps.Keys(Env)), ", ")))
		}
	}
	return s, nil
}

func splitList(v string) []string {
	var out []string
	for f := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		out = append(out, f)
	}
	return out
}
