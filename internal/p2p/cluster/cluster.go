// Package cluster is the policy of a P2P cluster, as pure functions of
// what the shared ledger holds: which VPN address each node takes and
// which nodes are the Kubernetes control plane. Every node runs the same
// functions on the same ledger and so reaches the same answer without
// talking it over; the mesh (transport, discovery, the ledger itself)
// lives elsewhere.
package cluster

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
)

// Roles a node takes.
const (
	RoleMaster = "master"
	RoleWorker = "worker"
	RoleNone   = "none" // in the mesh, not in the cluster
	RoleAuto   = "auto" // decided by Elect
)

// DefaultPrefix is the VPN's network when the config names none, as
// upstream.
var DefaultPrefix = netip.MustParsePrefix("10.1.0.0/24")

// Member is one node as the ledger shows it.
type Member struct {
	// ID is the node's libp2p peer ID: unique, and what ties are broken
	// by.
	ID string
	// Address is the VPN address the node claims (invalid: none yet).
	Address netip.Addr
	// Role is the role the node holds: taken earlier and persisted, or
	// forced by its config (Forced); "" or RoleAuto when it has none yet.
	Role   string
	Forced bool
}

// Address is the VPN address of the member self: the one it claims when
// no member with a smaller ID claims it too, else the first free address
// from a point in the prefix derived from its ID. The network and
// broadcast addresses are never given.
func Address(prefix netip.Prefix, self string, members []Member) (netip.Addr, error) {
	prefix = prefix.Masked()
	taken := map[netip.Addr]string{}
	var mine netip.Addr
	byID := slices.Clone(members)
	slices.SortFunc(byID, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	for _, m := range byID {
		if m.ID == self {
			mine = m.Address
			continue
		}
		if !m.Address.IsValid() || !prefix.Contains(m.Address) {
			continue
		}
		if _, dup := taken[m.Address]; !dup {
			taken[m.Address] = m.ID
		}
	}
	if mine.IsValid() && prefix.Contains(mine) && usable(prefix, mine) {
		if owner, ok := taken[mine]; !ok || owner > self {
			return mine, nil
		}
	}
	size := hostCount(prefix)
	if size <= 0 {
		return netip.Addr{}, fmt.Errorf("the VPN network %s has no room for nodes", prefix)
	}
	h := sha256.Sum256([]byte(self))
	start := binary.BigEndian.Uint64(h[:8]) % uint64(size)
	for i := range uint64(size) {
		a := nth(prefix, 1+(start+i)%uint64(size))
		if _, ok := taken[a]; !ok {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("the VPN network %s is full (%d nodes)", prefix, size)
}

// hostCount is how many addresses of prefix nodes can have (IPv4: less
// the network and broadcast addresses), capped for big IPv6 prefixes.
func hostCount(p netip.Prefix) int64 {
	bits := p.Addr().BitLen() - p.Bits()
	if bits >= 32 {
		return 1 << 31
	}
	n := int64(1) << bits
	if p.Addr().Is4() {
		n -= 2
	}
	return n
}

// nth is the address n after the prefix's network address.
func nth(p netip.Prefix, n uint64) netip.Addr {
	b := p.Addr().AsSlice()
	for i := len(b) - 1; i >= 0 && n > 0; i-- {
		sum := uint64(b[i]) + n&0xff
		b[i] = byte(sum)
		n = n>>8 + sum>>8
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func usable(p netip.Prefix, a netip.Addr) bool {
	if a == p.Addr() {
		return false
	}
	if p.Addr().Is4() {
		last := nth(p, uint64(hostCount(p))+1)
		return a != last
	}
	return true
}

// Election is what Elect decides.
type Election struct {
	// Roles of every member by ID; empty while the cluster waits for
	// minimum nodes.
	Roles map[string]string
	// Masters in the order they join: the first one initialises the
	// cluster (k3s --cluster-init with HA), the others join it.
	Masters []string
}

// Elect gives the roles. A role a member already holds (persisted from an
// earlier election, or forced by its config) is never changed, and a
// master stays one while the ledger has it, present or not: a master that
// goes away is not replaced, so a cluster never gets a second control
// plane by flapping. The cluster waits for minNodes members before its
// first election; then members without a role, smallest ID first, become
// masters until there are masters of them (1 without HA), and every other
// member a worker.
//
// order is the masters' join order as the cluster knows it (the masters
// lists of the entries): masters already in place keep that order, so the
// one that initialised the cluster stays first whatever the IDs of masters
// elected later; masters it does not name follow by ID.
func Elect(members []Member, minNodes, masters int, order []string) Election {
	if masters < 1 {
		masters = 1
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	e := Election{Roles: map[string]string{}}
	for _, m := range ms {
		switch m.Role {
		case RoleMaster, RoleWorker, RoleNone:
			e.Roles[m.ID] = m.Role
		}
	}
	for _, id := range order {
		if e.Roles[id] == RoleMaster && !slices.Contains(e.Masters, id) {
			e.Masters = append(e.Masters, id)
		}
	}
	for _, m := range ms {
		if m.Role == RoleMaster && !slices.Contains(e.Masters, m.ID) {
			e.Masters = append(e.Masters, m.ID)
		}
	}
	if len(e.Masters) == 0 && len(ms) < max(minNodes, 1) {
		return Election{Roles: map[string]string{}}
	}
	for _, m := range ms {
		if _, ok := e.Roles[m.ID]; ok {
			continue
		}
		if len(e.Masters) < masters {
			e.Roles[m.ID] = RoleMaster
			e.Masters = append(e.Masters, m.ID)
		} else {
			e.Roles[m.ID] = RoleWorker
		}
	}
	return e
}
