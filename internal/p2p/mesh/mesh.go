// Package mesh is the network nodes sharing a token form, composed from
// libp2p's parts and nothing of our own: a host with its own key, TCP with
// Noise, a private network (libp2p's pnet) whose pre-shared key is derived
// from the token, so a host without the token cannot complete a handshake;
// discovery by mDNS under the token's mdns name and, unless disabled, the
// Kademlia DHT under the token's rendezvous; gossip pub/sub with strict
// signing on the token's room, which carries the ledger; and a stream
// protocol carrying the VPN's packets (router.go).
package mesh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	dutil "github.com/libp2p/go-libp2p/p2p/discovery/util"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/kairos-io/kairos/internal/p2p/token"
)

// DefaultListen are the addresses a host listens on when the config names
// none: TCP on every interface, on a port the kernel picks (mDNS and the
// DHT announce it). QUIC is not among libp2p's transports here: a private
// network works only over transports libp2p secures itself.
var DefaultListen = []string{"/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0"}

// Config is what a mesh host is made of.
type Config struct {
	Network token.Network
	// NetworkID separates several clusters sharing one token (p2p.network_id).
	NetworkID string
	Identity  crypto.PrivKey
	Listen    []string // multiaddrs; DefaultListen when empty
	// DHT enables discovery through the DHT besides mDNS; Bootstrap are
	// peers it starts from (nodes of this network reachable beyond the LAN).
	DHT       bool
	Bootstrap []peer.AddrInfo
	// VPN is the VPN's network: the host neither announces nor dials
	// addresses in it.
	VPN netip.Prefix
	// Validate accepts a ledger message from its signed author before it
	// is delivered or relayed; MaxMessage bounds one (the token's
	// max_message_size is upstream's, for a bigger ledger than ours).
	Validate   func(from string, data []byte) error
	MaxMessage int
	Log        io.Writer
}

// Message is a ledger message as received: From is its signed author.
type Message struct {
	From peer.ID
	Data []byte
}

// Mesh is a running host in the network.
type Mesh struct {
	Host  host.Host
	cfg   Config
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	dht   *dht.IpfsDHT
	mdns  interface{ Close() error }

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	failed map[peer.ID]time.Time     // connections that failed, when last said
	found  map[peer.ID]peer.AddrInfo // hosts mDNS announced, dialled again until connected
	dials  chan struct{}             // a semaphore: dials at once
}

// maxFailed bounds the failed connections remembered; maxDials the dials
// at once.
const (
	maxFailed = 1024
	maxDials  = 8
)

// names are what hosts of one network meet under, all derived from the
// token (and network_id), none of them the token's secrets themselves.
type names struct{ mdns, topic, rendezvous string }

func namesOf(n token.Network, networkID string) names {
	h := func(s string) string {
		sum := sha256.Sum256([]byte(s + "\x00" + networkID))
		return hex.EncodeToString(sum[:8])
	}
	return names{
		// mDNS service names are DNS labels: at most 63 bytes.
		mdns:       "kairos-" + h(n.MDNS),
		topic:      "/kairos/ledger/" + h(n.Room),
		rendezvous: "/kairos/rendezvous/" + h(n.Rendezvous),
	}
}

// PSK is the private network's key: the token's, for libp2p only.
func PSK(n token.Network, networkID string) []byte {
	k := n.Derive("libp2p-psk/" + networkID)
	return k[:]
}

// Start brings a host up in the network: listening, discovering, and
// subscribed to the ledger's topic.
func Start(ctx context.Context, cfg Config) (*Mesh, error) {
	if err := cfg.Network.Validate(); err != nil {
		return nil, err
	}
	if cfg.Identity == nil {
		return nil, errors.New("mesh: no host identity")
	}
	if len(cfg.Listen) == 0 {
		cfg.Listen = DefaultListen
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	h, err := newHost(cfg.Identity, PSK(cfg.Network, cfg.NetworkID), cfg.Listen, cfg.VPN)
	if err != nil {
		return nil, fmt.Errorf("starting the libp2p host: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	m := &Mesh{Host: h, cfg: cfg, cancel: cancel, failed: map[peer.ID]time.Time{}, found: map[peer.ID]peer.AddrInfo{}, dials: make(chan struct{}, maxDials)}
	fail := func(err error) (*Mesh, error) {
		m.Close()
		return nil, err
	}
	nm := namesOf(cfg.Network, cfg.NetworkID)
	maxMsg := cfg.MaxMessage
	if maxMsg <= 0 || maxMsg > cfg.Network.MaxMessageSize && cfg.Network.MaxMessageSize > 0 {
		maxMsg = cfg.Network.MaxMessageSize
	}
	if maxMsg <= 0 {
		maxMsg = token.DefaultMaxMessageSize
	}
	// An RPC frame carries the message with its signature, key and
	// envelope, and gossip's control lists: room for them.
	maxMsg = max(maxMsg+4<<10, 64<<10)
	// Strict signing (the default, said here because the ledger relies on
	// it): every message carries its author's key and signature, checked
	// on receipt, so From is who wrote it whoever relayed it.
	m.ps, err = pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMaxMessageSize(maxMsg),
		pubsub.WithFloodPublish(true))
	if err != nil {
		return fail(fmt.Errorf("starting gossip pub/sub: %w", err))
	}
	if cfg.Validate != nil {
		err := m.ps.RegisterTopicValidator(nm.topic, func(_ context.Context, _ peer.ID, msg *pubsub.Message) bool {
			return cfg.Validate(msg.GetFrom().String(), msg.Data) == nil
		})
		if err != nil {
			return fail(err)
		}
	}
	if m.topic, err = m.ps.Join(nm.topic); err != nil {
		return fail(err)
	}
	if m.sub, err = m.topic.Subscribe(); err != nil {
		return fail(err)
	}
	svc := mdns.NewMdnsService(h, nm.mdns, notifee{m: m, ctx: ctx})
	if err := svc.Start(); err != nil {
		return fail(fmt.Errorf("starting mDNS discovery: %w", err))
	}
	m.mdns = svc
	m.wg.Add(1)
	go m.redial(ctx)
	if cfg.DHT {
		m.dht, err = dht.New(h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix("/kairos"),
			dht.BootstrapPeers(cfg.Bootstrap...))
		if err != nil {
			return fail(fmt.Errorf("starting the DHT: %w", err))
		}
		if err := m.dht.Bootstrap(ctx); err != nil {
			return fail(fmt.Errorf("bootstrapping the DHT: %w", err))
		}
		m.wg.Add(1)
		go m.rendezvous(ctx, nm.rendezvous)
	}
	for _, ai := range cfg.Bootstrap {
		go m.connect(ctx, ai, "bootstrap")
	}
	return m, nil
}

// rendezvous advertises this host under the network's name in the DHT
// and connects to the hosts found there, every half minute.
func (m *Mesh) rendezvous(ctx context.Context, ns string) {
	defer m.wg.Done()
	disc := drouting.NewRoutingDiscovery(m.dht)
	dutil.Advertise(ctx, disc, ns)
	for {
		if peers, err := dutil.FindPeers(ctx, disc, ns); err == nil {
			for _, ai := range peers {
				if ai.ID != m.Host.ID() && len(ai.Addrs) > 0 {
					go m.connect(ctx, ai, "dht")
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(30 * time.Second):
		}
	}
}

func (m *Mesh) connect(ctx context.Context, ai peer.AddrInfo, how string) {
	if ai.ID == m.Host.ID() || m.Host.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	// A few dials at a time: mDNS is open to anyone on the LAN, who could
	// announce peers without end.
	select {
	case m.dials <- struct{}{}:
		defer func() { <-m.dials }()
	default:
		return // discovery offers it again
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.Host.Connect(ctx, ai); err != nil {
		// A host without the token fails here, at the private network's
		// handshake; so does one that went away. Said once per peer and
		// ten minutes: discovery offers the same host again and again.
		m.mu.Lock()
		last, said := m.failed[ai.ID]
		if !said || time.Since(last) > 10*time.Minute {
			if len(m.failed) >= maxFailed {
				clear(m.failed) // bounded: a flood of fake peers only costs log lines
			}
			m.failed[ai.ID] = time.Now()
			fmt.Fprintf(m.cfg.Log, "p2p: %s peer %s: not connected: %v\n", how, ai.ID, err)
		}
		m.mu.Unlock()
		return
	}
	m.mu.Lock()
	delete(m.failed, ai.ID)
	m.mu.Unlock()
	fmt.Fprintf(m.cfg.Log, "p2p: connected to %s (%s)\n", ai.ID, how)
}

type notifee struct {
	m   *Mesh
	ctx context.Context
}

// HandlePeerFound dials a host mDNS announced and keeps it for redial:
// mDNS announces a host once per record lifetime, and a first dial may
// fail (the other host still starting, both busy booting).
func (n notifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == n.m.Host.ID() {
		return
	}
	n.m.mu.Lock()
	if len(n.m.found) >= maxFailed {
		clear(n.m.found) // bounded: a flood of fake peers only costs dials
	}
	n.m.found[ai.ID] = ai
	n.m.mu.Unlock()
	go n.m.connect(n.ctx, ai, "mDNS")
}

// redialEvery is how often hosts mDNS found and not connected are dialled
// again.
var redialEvery = 10 * time.Second

// redial dials the hosts mDNS found that this one is not connected to,
// every redialEvery, until ctx ends.
func (m *Mesh) redial(ctx context.Context) {
	defer m.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(redialEvery):
		}
		m.mu.Lock()
		var todo []peer.AddrInfo
		for _, ai := range m.found {
			if m.Host.Network().Connectedness(ai.ID) != network.Connected {
				todo = append(todo, ai)
			}
		}
		m.mu.Unlock()
		for _, ai := range todo {
			go m.connect(ctx, ai, "mDNS")
		}
	}
}

// Publish sends data to every host of the network.
func (m *Mesh) Publish(ctx context.Context, data []byte) error {
	return m.topic.Publish(ctx, data)
}

// Next is the next ledger message from another host.
func (m *Mesh) Next(ctx context.Context) (Message, error) {
	for {
		msg, err := m.sub.Next(ctx)
		if err != nil {
			return Message{}, err
		}
		if msg.GetFrom() == m.Host.ID() {
			continue
		}
		return Message{From: msg.GetFrom(), Data: msg.Data}, nil
	}
}

// Connected are the hosts this one has a connection to.
func (m *Mesh) Connected() []peer.ID { return m.Host.Network().Peers() }

// Addrs are the addresses this host listens on, with its ID: what
// another host is given to bootstrap from.
func (m *Mesh) Addrs() []ma.Multiaddr {
	out, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: m.Host.ID(), Addrs: m.Host.Addrs()})
	if err != nil {
		return nil
	}
	return out
}

// Close leaves the network.
func (m *Mesh) Close() error {
	m.cancel()
	if m.mdns != nil {
		m.mdns.Close()
	}
	if m.sub != nil {
		m.sub.Cancel()
	}
	if m.topic != nil {
		m.topic.Close()
	}
	if m.dht != nil {
		m.dht.Close()
	}
	err := m.Host.Close()
	m.wg.Wait()
	return err
}

// NewIdentity is a new host key.
func NewIdentity() (crypto.PrivKey, error) {
	k, _, err := crypto.GenerateEd25519Key(nil)
	return k, err
}

// ParseBootstrap reads bootstrap peers: multiaddrs ending in /p2p/<id>.
func ParseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap peer %q: %w", s, err)
		}
		mas = append(mas, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("bootstrap peers: %w (each needs /p2p/<peer id>)", err)
	}
	return infos, nil
}
