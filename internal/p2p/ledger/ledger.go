// Package ledger is the state the nodes of a mesh share: one entry per
// node (its name, VPN address, role), which only that node writes. The
// mesh gossips entries signed by their sender (libp2p pub/sub with strict
// signing), so an entry is accepted only from the node it describes;
// each node bumps its entry's sequence number when it changes, and the
// highest sequence wins. Every node therefore converges on the same
// ledger, and package cluster's decisions on it agree.
package ledger

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kairos-io/kairos/internal/p2p/cluster"
)

// Entry is one node's line.
type Entry struct {
	// Peer is the node's libp2p peer ID, the entry's key.
	Peer     string     `json:"peer"`
	Seq      uint64     `json:"seq"`
	Hostname string     `json:"hostname,omitempty"`
	Address  netip.Addr `json:"address,omitzero"`
	Role     string     `json:"role,omitempty"`
	Forced   bool       `json:"forced,omitempty"`
	// NodeIP is the node's own address, which k3s uses when the cluster
	// does not run over the VPN (p2p.vpn.use: false).
	NodeIP netip.Addr `json:"node_ip,omitzero"`
	// Masters are the control plane as the node knows it. A master that
	// went away sends no entry any more; through these a node that joins
	// later still learns of it, and does not elect another.
	Masters []Master `json:"masters,omitempty"`
}

// Master is one control-plane node as an entry names it.
type Master struct {
	Peer     string     `json:"peer"`
	Hostname string     `json:"hostname,omitempty"`
	Address  netip.Addr `json:"address,omitzero"`
	NodeIP   netip.Addr `json:"node_ip,omitzero"`
}

// MaxMasters bounds the masters an entry names.
const MaxMasters = 16

// MaxEntrySize bounds an entry on the wire.
const MaxEntrySize = 4 << 10

// Decode reads an entry a peer sent, checking it describes the sender.
func Decode(from string, data []byte) (Entry, error) {
	var e Entry
	if len(data) > MaxEntrySize {
		return e, fmt.Errorf("an entry of %d bytes from %s: at most %d", len(data), from, MaxEntrySize)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("an entry from %s: %w", from, err)
	}
	if e.Peer != from {
		return e, fmt.Errorf("%s sent an entry for %s: a node writes only its own", from, e.Peer)
	}
	switch e.Role {
	case "", cluster.RoleAuto, cluster.RoleMaster, cluster.RoleWorker, cluster.RoleNone:
	default:
		return e, fmt.Errorf("an entry from %s has role %q", from, e.Role)
	}
	if len(e.Masters) > MaxMasters {
		return e, fmt.Errorf("an entry from %s names %d masters: at most %d", from, len(e.Masters), MaxMasters)
	}
	for _, m := range e.Masters {
		if _, err := peer.Decode(m.Peer); err != nil || len(m.Peer) > 128 {
			return e, fmt.Errorf("an entry from %s names a master whose peer ID is not one", from)
		}
		if !m.Address.IsValid() && !m.NodeIP.IsValid() {
			return e, fmt.Errorf("an entry from %s names master %s without an address", from, m.Peer)
		}
		if !hostname(m.Hostname) {
			return e, fmt.Errorf("an entry from %s names a master with a host name that is not one (%d bytes)", from, len(m.Hostname))
		}
	}
	if !hostname(e.Hostname) {
		// Host names reach logs, p2p status and the mesh's DNS: letters,
		// digits, '-' and '.', nothing a terminal or a log reader acts on.
		return e, fmt.Errorf("an entry from %s has a host name that is not one (%d bytes)", from, len(e.Hostname))
	}
	return e, nil
}

// Encode is the entry on the wire.
func (e Entry) Encode() []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic(err) // strings, numbers and an address always marshal
	}
	return b
}

// Ledger is the entries a node knows, safe for concurrent use.
type Ledger struct {
	mu      sync.Mutex
	entries map[string]Entry
	seen    map[string]time.Time
}

// New is an empty ledger.
func New() *Ledger { return &Ledger{entries: map[string]Entry{}, seen: map[string]time.Time{}} }

// ErrStale is an entry older than the one held.
var ErrStale = errors.New("older than the entry held")

// Put takes an entry (already checked by Decode) unless an entry of the
// same peer with a higher or equal sequence is held; at is when it was
// heard, for Alive.
func (l *Ledger) Put(e Entry, at time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[e.Peer] = at
	if old, ok := l.entries[e.Peer]; ok && old.Seq >= e.Seq {
		if old.Seq == e.Seq {
			return nil
		}
		return ErrStale
	}
	l.entries[e.Peer] = e
	return nil
}

// Entries are all entries, by peer ID.
func (l *Ledger) Entries() []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Entry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Peer, b.Peer) })
	return out
}

// Get is the entry of peer.
func (l *Ledger) Get(peer string) (Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[peer]
	return e, ok
}

// Alive says whether peer was heard from since t.
func (l *Ledger) Alive(peer string, since time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.seen[peer].Before(since)
}

var hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// hostname says whether s is a host name (RFC 1123), or empty.
func hostname(s string) bool { return s == "" || hostnameRe.MatchString(s) }

// Order is the masters' join order as the entries name it: each entry's
// list (in its order) merged, entries by peer ID.
func (l *Ledger) Order() []string {
	var out []string
	for _, e := range l.Entries() {
		for _, m := range e.Masters {
			if !slices.Contains(out, m.Peer) {
				out = append(out, m.Peer)
			}
		}
	}
	return out
}

// Members are the entries as package cluster takes them, and the masters
// entries name that have no entry of their own (gone away: they stay
// masters, as cluster.Elect wants).
func (l *Ledger) Members() []cluster.Member {
	var ms []cluster.Member
	entries := l.Entries()
	have := map[string]bool{}
	for _, e := range entries {
		ms = append(ms, cluster.Member{ID: e.Peer, Address: e.Address, Role: e.Role, Forced: e.Forced})
		have[e.Peer] = true
	}
	for _, e := range entries {
		for _, m := range e.Masters {
			if !have[m.Peer] {
				ms = append(ms, cluster.Member{ID: m.Peer, Address: m.Address, Role: cluster.RoleMaster})
				have[m.Peer] = true
			}
		}
	}
	slices.SortFunc(ms, func(a, b cluster.Member) int { return cmp.Compare(a.ID, b.ID) })
	return ms
}

// Masters are the masters the ledger knows, with their addresses: from
// their own entries, else as other entries name them.
func (l *Ledger) Masters() map[string]Master {
	out := map[string]Master{}
	entries := l.Entries()
	for _, e := range entries {
		for _, m := range e.Masters {
			out[m.Peer] = m
		}
	}
	for _, e := range entries {
		if e.Role == cluster.RoleMaster {
			out[e.Peer] = Master{Peer: e.Peer, Hostname: e.Hostname, Address: e.Address, NodeIP: e.NodeIP}
		}
	}
	return out
}
