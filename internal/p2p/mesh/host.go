package mesh

import (
	"fmt"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/sec"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// newHost assembles a libp2p host from its parts: TCP, the private
// network's PSK, Noise, yamux, identify. It is what libp2p.New does with
// these options, without the package that links every transport libp2p
// has (QUIC, WebRTC, WebTransport: 22 MB more in an agent that also runs
// in the initramfs), none of which a private network can use anyway.
func newHost(priv crypto.PrivKey, psk pnet.PSK, listen []string, vpn netip.Prefix) (host.Host, error) {
	gate := overlay{vpn: vpn}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	ps, err := pstoremem.NewPeerstore()
	if err != nil {
		return nil, err
	}
	if err := ps.AddPrivKey(id, priv); err != nil {
		return nil, err
	}
	if err := ps.AddPubKey(id, priv.GetPublic()); err != nil {
		return nil, err
	}
	// libp2p's default limits, scaled to the machine: a peer cannot
	// exhaust the node's memory or descriptors.
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.DefaultLimits.AutoScale()))
	if err != nil {
		return nil, err
	}
	bus := eventbus.NewBus()
	sw, err := swarm.NewSwarm(id, ps, bus, swarm.WithResourceManager(rm), swarm.WithConnectionGater(gate))
	if err != nil {
		return nil, err
	}
	closeAll := func(err error) (host.Host, error) {
		sw.Close()
		return nil, err
	}
	nz, err := noise.New(noise.ID, priv, nil)
	if err != nil {
		return closeAll(err)
	}
	upg, err := upgrader.New([]sec.SecureTransport{nz}, []upgrader.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}}, psk, rm, gate)
	if err != nil {
		return closeAll(err)
	}
	tpt, err := tcp.NewTCPTransport(upg, rm, nil)
	if err != nil {
		return closeAll(err)
	}
	if err := sw.AddTransport(tpt); err != nil {
		return closeAll(err)
	}
	h, err := basichost.NewHost(sw, &basichost.HostOpts{EventBus: bus, EnablePing: true, UserAgent: "kairos-agent", AddrsFactory: gate.addrs})
	if err != nil {
		return closeAll(err)
	}
	var addrs []ma.Multiaddr
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("listen address %q: %w", s, err)
		}
		addrs = append(addrs, a)
	}
	if err := sw.Listen(addrs...); err != nil {
		h.Close()
		return nil, fmt.Errorf("listening on %v: %w", listen, err)
	}
	h.Start()
	return h, nil
}

// overlay keeps the mesh off its own VPN: addresses in the VPN's network
// are neither announced nor dialled, so a connection that carries the VPN
// never runs through it (a peer announces every interface's address, the
// VPN device's too).
type overlay struct{ vpn netip.Prefix }

func (o overlay) inVPN(a ma.Multiaddr) bool {
	if !o.vpn.IsValid() {
		return false
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return false
	}
	addr, ok := netip.AddrFromSlice(ip)
	return ok && o.vpn.Contains(addr.Unmap())
}

func (o overlay) addrs(in []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range in {
		if !o.inVPN(a) {
			out = append(out, a)
		}
	}
	return out
}

func (o overlay) InterceptPeerDial(peer.ID) bool                   { return true }
func (o overlay) InterceptAddrDial(_ peer.ID, a ma.Multiaddr) bool { return !o.inVPN(a) }
func (o overlay) InterceptAccept(c network.ConnMultiaddrs) bool    { return !o.inVPN(c.RemoteMultiaddr()) }
func (o overlay) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (o overlay) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
