package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kairos-io/kairos/internal/p2p/cluster"
	"github.com/kairos-io/kairos/internal/p2p/dns"
	"github.com/kairos-io/kairos/internal/p2p/ledger"
	"github.com/kairos-io/kairos/internal/p2p/mesh"
	"github.com/kairos-io/kairos/internal/p2p/vpn"
	"github.com/kairos-io/kairos/internal/safefile"
)

// Timings of a node. Settle is how long the members seen must stay the
// same before a first election: nodes booted together meet within it
// (mDNS), so they elect on the same ledger.
const (
	tick      = time.Second
	heartbeat = 5 * time.Second
	settle    = 8 * time.Second
	// discover is how long a node without an address listens before it
	// claims one: it then knows the addresses taken, and takes a free one
	// rather than one a running node holds.
	discover = 5 * time.Second
	// retryDeploy spaces the attempts at a k3s configuration that failed.
	retryDeploy = time.Minute
)

// Options are how a node runs.
type Options struct {
	// Root is where the node's paths are: "/" on a node, another
	// directory for tests and chroots.
	Root     string
	Settings Settings
	Log      io.Writer
	// Deploy starts (or restarts, when its configuration changed) the
	// unit a role runs; nil only writes its configuration.
	Deploy func(unit string, changed bool) error
}

// Node is a running member of the mesh.
type Node struct {
	opts Options
	s    Settings
	log  io.Writer

	mesh   *mesh.Mesh
	ledger *ledger.Ledger
	self   string

	mu      sync.Mutex
	state   State
	entry   ledger.Entry
	seq     uint64    // the last sequence number published
	started time.Time // when Run started
	members string    // the member set last seen, to tell when it settles
	since   time.Time
	waiting string // why the node has no role yet

	// routes is the routing table the router and the DNS read on every
	// packet and query: a snapshot replaced whole, never locked.
	routes atomic.Pointer[routeTable]

	// Only Run's goroutine touches these.
	applied  []byte // the k3s configuration last written
	failed   []byte // the configuration whose deploy failed, and when
	failedAt time.Time

	dev       *vpn.Device
	devAddr   netip.Addr
	wake      chan struct{}
	routerErr chan error
}

// routeTable is who holds which VPN address: every member whose claim
// stands (the smaller ID keeps an address two claim), as every node
// computes it.
type routeTable struct {
	self   netip.Addr
	byAddr map[netip.Addr]peer.ID
	addrOf map[peer.ID]netip.Addr
}

// Run is `kairos-agent p2p run`: the node joins the mesh and stays until
// ctx ends.
func Run(ctx context.Context, opts Options) error {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	s := opts.Settings
	for _, w := range s.Warnings {
		fmt.Fprintf(opts.Log, "p2p: warning: %s\n", w)
	}
	key, err := LoadIdentity(opts.Root)
	if err != nil {
		return fmt.Errorf("the node's identity: %w", err)
	}
	st, err := LoadState(opts.Root)
	if err != nil {
		return err
	}
	// Sequence numbers grow across restarts whatever the clock says (a
	// board without a real-time clock boots in 1970): the number of
	// starts, kept, in the high half.
	st.Starts++
	if err := st.Save(opts.Root); err != nil {
		return err
	}
	m, err := mesh.Start(ctx, mesh.Config{
		Network: s.Network, NetworkID: s.NetworkID, Identity: key,
		Listen: s.Listen, DHT: s.DHT, Bootstrap: s.Bootstrap, VPN: s.Prefix.Masked(), Log: opts.Log,
		// Only valid entries are relayed: a peer's junk stops at the first
		// node it reaches.
		Validate:   func(from string, data []byte) error { _, err := ledger.Decode(from, data); return err },
		MaxMessage: ledger.MaxEntrySize,
	})
	if err != nil {
		return err
	}
	defer m.Close()
	n := &Node{
		opts: opts, s: s, log: opts.Log, mesh: m, ledger: ledger.New(),
		self: m.Host.ID().String(), state: st, wake: make(chan struct{}, 1), routerErr: make(chan error, 1),
		seq: st.Starts << 32, started: time.Now(),
	}
	n.routes.Store(&routeTable{})
	n.entry = ledger.Entry{Peer: n.self, Hostname: hostname(s), Address: st.Address, Role: st.Role, Masters: st.Masters, NodeIP: nodeIP(s.Interface)}
	switch {
	case s.Role != cluster.RoleAuto:
		n.entry.Role, n.entry.Forced = s.Role, true
	case !s.Auto && n.entry.Role == "":
		// VPN only: said in the ledger, so nobody elects this node.
		n.entry.Role, n.entry.Forced = cluster.RoleNone, true
	}
	if !n.entry.Address.IsValid() && s.Prefix.Addr() != s.Prefix.Masked().Addr() {
		n.entry.Address = s.Prefix.Addr() // ADDRESS named one: claim it first
	}
	fmt.Fprintf(n.log, "p2p: node %s (%s) listening on %v; VPN %s on %s; discovery: mDNS%s\n",
		n.self, n.entry.Hostname, m.Addrs(), s.Prefix.Masked(), s.Interface, map[bool]string{true: " and the DHT", false: ""}[s.DHT])
	defer func() {
		if n.dev != nil {
			n.dev.Close()
		}
	}()

	// The node's own entry is in its ledger from the start: the masters it
	// remembers count before anyone else is heard from.
	n.seq++
	n.entry.Seq = n.seq
	if err := n.ledger.Put(n.entry, time.Now()); err != nil {
		return err
	}
	if s.DNS {
		stop, err := n.startDNS()
		if err != nil {
			return err
		}
		defer stop()
	}
	go n.receive(ctx)
	t := time.NewTicker(tick)
	defer t.Stop()
	var published time.Time
	for {
		changed, k, err := n.step(ctx)
		if err != nil {
			fmt.Fprintf(n.log, "p2p: %v\n", err)
		}
		if k != nil {
			if err := n.deploy(*k); err != nil {
				fmt.Fprintf(n.log, "p2p: %v\n", err)
			}
		}
		if changed || time.Since(published) >= heartbeat {
			n.publish(ctx)
			published = time.Now()
		}
		n.writeStatus()
		select {
		case <-ctx.Done():
			return nil
		case err := <-n.routerErr:
			return err // the device is gone: the service restarts the node
		case <-t.C:
		case <-n.wake:
		}
	}
}

func hostname(s Settings) string {
	if s.Hostname != "" {
		return s.Hostname
	}
	h, _ := os.Hostname()
	return h
}

// nodeIP is the node's own address: the first global IPv4 address of an
// interface that is not the VPN's, for k3s when the cluster does not run
// over the VPN.
func nodeIP(vpnIface string) netip.Addr {
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Name == vpnIface || i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && p.Addr().IsGlobalUnicast() {
				return p.Addr()
			}
		}
	}
	return netip.Addr{}
}

// receive takes the other nodes' entries into the ledger.
func (n *Node) receive(ctx context.Context) {
	for {
		msg, err := n.mesh.Next(ctx)
		if err != nil {
			return
		}
		e, err := ledger.Decode(msg.From.String(), msg.Data)
		if err != nil {
			fmt.Fprintf(n.log, "p2p: ledger entry refused: %v\n", err)
			continue
		}
		old, had := n.ledger.Get(e.Peer)
		if err := n.ledger.Put(e, time.Now()); err != nil {
			continue
		}
		if !had || !sameEntry(old, e) {
			if !had {
				fmt.Fprintf(n.log, "p2p: %s (%s) joined\n", e.Peer, e.Hostname)
			}
			select {
			case n.wake <- struct{}{}:
			default:
			}
		}
	}
}

func sameEntry(a, b ledger.Entry) bool {
	a.Seq, b.Seq = 0, 0
	return string(a.Encode()) == string(b.Encode())
}

func (n *Node) publish(ctx context.Context) {
	n.mu.Lock()
	n.seq++
	n.entry.Seq = n.seq
	e := n.entry
	n.mu.Unlock()
	if err := n.ledger.Put(e, time.Now()); err != nil {
		fmt.Fprintf(n.log, "p2p: own entry: %v\n", err)
	}
	if err := n.mesh.Publish(ctx, e.Encode()); err != nil && ctx.Err() == nil {
		fmt.Fprintf(n.log, "p2p: publishing the ledger entry: %v\n", err)
	}
}

// step brings the node in line with the ledger: its address, the routes,
// the VPN device and its role. It says whether the node's own entry
// changed, and gives the k3s configuration the role calls for once it is
// known (Run deploys it, without the lock).
func (n *Node) step(ctx context.Context) (bool, *cluster.K3s, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stepLocked(ctx)
}

func (n *Node) stepLocked(ctx context.Context) (bool, *cluster.K3s, error) {
	e := n.entry
	if !e.NodeIP.IsValid() { // the LAN's DHCP may answer after the node started
		e.NodeIP = nodeIP(n.s.Interface)
	}
	members := n.membersWithSelf()
	s := n.s
	prefix := s.Prefix.Masked()

	if !e.Address.IsValid() && time.Since(n.started) < discover {
		n.waiting = "discovering the mesh before taking a VPN address"
		return n.commit(e), nil, nil
	}
	addr, err := cluster.Address(prefix, n.self, members)
	if err != nil {
		return false, nil, err
	}
	e.Address = addr
	if s.CreateVPN {
		if err := n.device(ctx, addr); err != nil {
			return n.commit(e), nil, err
		}
	}
	t := &routeTable{self: n.devAddr, byAddr: map[netip.Addr]peer.ID{}, addrOf: map[peer.ID]netip.Addr{}}
	for _, m := range members {
		if !m.Address.IsValid() {
			continue
		}
		if a, err := cluster.Address(prefix, m.ID, members); err == nil && a == m.Address {
			id, err := peer.Decode(m.ID)
			if err != nil {
				continue
			}
			t.byAddr[a], t.addrOf[id] = id, a
		}
	}
	n.routes.Store(t)
	if n.state.Address != addr {
		n.state.Address = addr
		if err := n.state.Save(n.opts.Root); err != nil {
			return n.commit(e), nil, err
		}
	}

	// Roles.
	key := memberKey(members)
	if key != n.members {
		n.members, n.since = key, time.Now()
	}
	var el cluster.Election
	if e.Role == "" || e.Role == cluster.RoleAuto {
		switch {
		case !s.Auto:
			n.waiting = "p2p.auto.enable is false and p2p.role is not set: this node carries the VPN only"
			return n.commit(e), nil, nil
		case len(members) < s.MinimumNodes && len(n.ledger.Masters()) == 0:
			n.waiting = fmt.Sprintf("waiting for %d nodes (p2p.minimum_nodes), %d seen", s.MinimumNodes, len(members))
			return n.commit(e), nil, nil
		case time.Since(n.since) < settle:
			n.waiting = "waiting for the members seen to settle"
			return n.commit(e), nil, nil
		}
	}
	el = cluster.Elect(members, s.MinimumNodes, s.Masters, n.ledger.Order())
	role := el.Roles[n.self]
	if role == "" {
		n.waiting = "no role elected yet"
		return n.commit(e), nil, nil
	}
	if e.Role != role {
		fmt.Fprintf(n.log, "p2p: this node is a %s (masters: %v)\n", role, el.Masters)
		e.Role = role
	}
	known := n.ledger.Masters()
	e.Masters = nil
	var masterAddrs []netip.Addr
	for _, id := range el.Masters {
		mm, ok := known[id]
		if id == n.self {
			mm, ok = ledger.Master{Peer: id, Hostname: e.Hostname, Address: addr, NodeIP: e.NodeIP}, true
		}
		if !ok {
			continue
		}
		e.Masters = append(e.Masters, mm)
		a := mm.Address
		if !s.UseVPN {
			a = mm.NodeIP
		}
		if _, settled := t.addrOf[peerID(id)]; s.UseVPN && !settled && id != n.self {
			a = netip.Addr{}
		}
		if a.IsValid() {
			masterAddrs = append(masterAddrs, a)
		}
	}
	// Kept: the roles that are the cluster's (not "none", which the
	// config says each time) and the masters in their join order.
	keep := e.Role
	if keep == cluster.RoleNone {
		keep = ""
	}
	if keep != n.state.Role || !slices.Equal(e.Masters, n.state.Masters) {
		n.state.Role, n.state.Masters = keep, e.Masters
		if err := n.state.Save(n.opts.Root); err != nil {
			return n.commit(e), nil, err
		}
	}
	if role == cluster.RoleNone {
		n.waiting = ""
		return n.commit(e), nil, nil
	}
	if len(masterAddrs) < len(el.Masters) || len(masterAddrs) == 0 {
		n.waiting = "waiting for the masters' addresses"
		return n.commit(e), nil, nil
	}
	self := addr
	iface := s.Interface
	if !s.UseVPN {
		self, iface = e.NodeIP, ""
	}
	k, err := cluster.K3sFor(role, self, iface, masterAddrs, n.k3sToken(), s.HA)
	if err != nil {
		n.waiting = err.Error()
		return n.commit(e), nil, nil
	}
	n.waiting = ""
	return n.commit(e), &k, nil
}

func peerID(s string) peer.ID {
	id, _ := peer.Decode(s)
	return id
}

// commit makes e the node's entry, saying whether it changed.
func (n *Node) commit(e ledger.Entry) bool {
	changed := !sameEntry(e, n.entry)
	n.entry = e
	return changed
}

// membersWithSelf are the ledger's members with this node's current
// entry in place of what the ledger holds of it.
func (n *Node) membersWithSelf() []cluster.Member {
	var out []cluster.Member
	for _, m := range n.ledger.Members() {
		if m.ID != n.self {
			out = append(out, m)
		}
	}
	return append(out, cluster.Member{ID: n.self, Address: n.entry.Address, Role: n.entry.Role, Forced: n.entry.Forced})
}

func memberKey(ms []cluster.Member) string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return fmt.Sprint(ids)
}

// k3sToken is the cluster's token: derived from the network token, so
// every node has it and nothing else does.
func (n *Node) k3sToken() string {
	k := n.s.Network.Derive("k3s-token/" + n.s.NetworkID)
	return hex.EncodeToString(k[:])
}

// device brings the VPN interface up with addr, or moves it there.
func (n *Node) device(ctx context.Context, addr netip.Addr) error {
	pfx := netip.PrefixFrom(addr, n.s.Prefix.Bits())
	if n.dev == nil {
		d, err := vpn.Open(n.s.Interface, pfx, n.s.MTU)
		if err != nil {
			return err
		}
		n.dev, n.devAddr = d, addr
		fmt.Fprintf(n.log, "p2p: %s is up with %s\n", d.Name, pfx)
		r := mesh.NewRouter(n.mesh.Host, d, routes{n}, n.log)
		go func() {
			if err := r.Run(ctx); err != nil {
				n.routerErr <- err
			}
		}()
		return nil
	}
	if n.devAddr != addr {
		if err := n.dev.Readdress(netip.PrefixFrom(n.devAddr, n.s.Prefix.Bits()), pfx); err != nil {
			return err
		}
		fmt.Fprintf(n.log, "p2p: %s moved from %s to %s (another node claimed it first)\n", n.dev.Name, n.devAddr, addr)
		n.devAddr = addr
	}
	return nil
}

// startDNS runs the mesh's name server and points the node's resolv.conf
// at it; stopping puts the node's own back. The resolvers it forwards to
// are the node's: those of the resolv.conf found at the first start (kept
// in /run, so a restart of the service, which finds its own file, still
// knows them). systemd-resolved's stub (127.0.0.53) stays one of them: it
// is the node's resolver, on another address than ours.
func (n *Node) startDNS() (func(), error) {
	const resolv, orig = "/etc/resolv.conf", "/run/kairos/p2p/resolv.conf.orig"
	old, err := safefile.ReadFile(n.opts.Root, orig)
	if err != nil {
		old, _ = safefile.ReadFile(n.opts.Root, resolv)
		if bytes.HasPrefix(old, []byte(dns.Header)) {
			old = nil // ours, from a run whose /run is gone: nothing to learn from it
		}
		if err := safefile.Dir(n.opts.Root, "/run/kairos/p2p", 0o700, -1, -1); err != nil {
			return nil, err
		}
		if err := safefile.WriteFile(n.opts.Root, orig, old, 0o644, -1, -1); err != nil {
			return nil, err
		}
	}
	fwd := n.s.DNSForward
	if len(fwd) == 0 {
		fwd = dns.Upstreams(old, n.s.DNSListen)
	}
	if !n.s.DNSForwarding {
		fwd = nil
	}
	srv := &dns.Server{Lookup: n.lookupHost, Forward: fwd}
	if err := srv.Start(n.s.DNSListen); err != nil {
		return nil, err
	}
	conf, err := dns.ResolvConf(old, n.s.DNSListen)
	if err == nil {
		err = safefile.WriteFile(n.opts.Root, resolv, conf, 0o644, -1, -1)
	}
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("pointing %s at the mesh's DNS: %w", resolv, err)
	}
	fmt.Fprintf(n.log, "p2p: DNS on %s: the mesh's hostnames, the rest forwarded to %v\n", n.s.DNSListen, fwd)
	return func() {
		srv.Close()
		if len(old) > 0 {
			if err := safefile.WriteFile(n.opts.Root, resolv, old, 0o644, -1, -1); err != nil {
				fmt.Fprintf(n.log, "p2p: putting %s back: %v\n", resolv, err)
			}
		}
	}, nil
}

// lookupHost is the VPN address of the node named host (its address
// standing, as the routes have it).
// A name two nodes claim answers neither: no node can take another's.
func (n *Node) lookupHost(host string) (netip.Addr, bool) {
	t := n.routes.Load()
	var found []netip.Addr
	for _, e := range n.ledger.Entries() {
		if strings.EqualFold(e.Hostname, host) {
			a, ok := t.addrOf[peerID(e.Peer)]
			if e.Peer == n.self {
				a, ok = t.self, t.self.IsValid()
			}
			if ok {
				found = append(found, a)
			}
		}
	}
	if len(found) != 1 {
		return netip.Addr{}, false
	}
	return found[0], true
}

// routes is the router's view of the node's routing table.
type routes struct{ n *Node }

func (r routes) Self() netip.Addr { return r.n.routes.Load().self }

func (r routes) PeerOf(a netip.Addr) (peer.ID, bool) {
	id, ok := r.n.routes.Load().byAddr[a]
	return id, ok
}

func (r routes) AddrOf(id peer.ID) (netip.Addr, bool) {
	a, ok := r.n.routes.Load().addrOf[id]
	return a, ok
}

// deploy writes the role's k3s configuration and has it run, when it is
// not what was written already.
func (n *Node) deploy(k cluster.K3s) error {
	data := Sysconfig(n.s, k)
	if string(data) == string(n.applied) {
		return nil
	}
	if string(data) == string(n.failed) && time.Since(n.failedAt) < retryDeploy {
		return nil // said already; tried again in a while
	}
	path := filepath.Join("/etc/sysconfig", k.Unit)
	old, _ := os.ReadFile(filepath.Join(n.opts.Root, path))
	changed := old != nil && string(old) != string(data)
	if string(old) != string(data) {
		if err := writeSecret(n.opts.Root, path, data); err != nil {
			return err
		}
		fmt.Fprintf(n.log, "p2p: %s written for the %s role (%s)\n", path, k.Unit, summary(k))
	}
	if n.opts.Deploy != nil {
		if err := n.opts.Deploy(k.Unit, changed); err != nil {
			n.failed, n.failedAt = data, time.Now()
			return fmt.Errorf("starting %s (again in %s): %w", k.Unit, retryDeploy, err)
		}
	}
	n.applied = data
	return nil
}

// summary says what a k3s configuration does without its secrets.
func summary(k cluster.K3s) string {
	s := fmt.Sprint(k.Args)
	if u := k.Env["K3S_URL"]; u != "" {
		s += " K3S_URL=" + u
	}
	return s
}
