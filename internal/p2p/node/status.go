package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kairos-io/kairos/internal/agent/firstboot"
	"github.com/kairos-io/kairos/internal/p2p/cluster"
	"github.com/kairos-io/kairos/internal/safefile"
)

// Sysconfig is the k3s service's configuration for a role: what the mesh
// derives, with the cloud-config's k3s (server) or k3s-agent block merged
// over it (user values win; replace_args/replace_env as upstream).
func Sysconfig(s Settings, k cluster.K3s) []byte {
	block := s.K3sAgent
	if k.Unit == "k3s" {
		block = s.K3s
	}
	data := firstboot.Sysconfig(block, k.Args, k.Env)
	_, rest, _ := strings.Cut(string(data), "\n") // firstboot's header line
	return []byte("# Written by kairos-agent p2p run for this node's " + k.Unit + " role; the cloud-config's " + k.Unit + " block is merged in.\n" + rest)
}

// writeSecret writes a file holding secrets: 0600, never through a link.
func writeSecret(root, path string, data []byte) error {
	return safefile.WriteFile(root, path, data, 0o600, -1, -1)
}

// Status is what `kairos-agent p2p status` shows: the node's view of the
// mesh, written by the running node every second.
type Status struct {
	Updated   time.Time      `json:"updated"`
	Peer      string         `json:"peer"`
	Hostname  string         `json:"hostname"`
	Address   netip.Addr     `json:"address,omitzero"`
	Interface string         `json:"interface,omitempty"`
	Role      string         `json:"role,omitempty"`
	Waiting   string         `json:"waiting,omitempty"`
	Masters   []MasterStatus `json:"masters"`
	Peers     []PeerStatus   `json:"peers"`
}

// MasterStatus is one control-plane node.
type MasterStatus struct {
	Peer     string     `json:"peer"`
	Hostname string     `json:"hostname,omitempty"`
	Address  netip.Addr `json:"address,omitzero"`
}

// PeerStatus is another node as this one sees it.
type PeerStatus struct {
	Peer      string     `json:"peer"`
	Hostname  string     `json:"hostname,omitempty"`
	Address   netip.Addr `json:"address,omitzero"`
	Role      string     `json:"role,omitempty"`
	Connected bool       `json:"connected"`
	Alive     bool       `json:"alive"` // heard from in the last 30 s
}

func (n *Node) writeStatus() {
	n.mu.Lock()
	st := Status{
		Updated: time.Now().UTC(), Peer: n.self, Hostname: n.entry.Hostname, Address: n.entry.Address,
		Role: n.entry.Role, Waiting: n.waiting, Masters: []MasterStatus{},
	}
	if n.dev != nil {
		st.Interface = n.dev.Name
	}
	masters := n.entry.Masters
	n.mu.Unlock()
	for _, m := range masters {
		st.Masters = append(st.Masters, MasterStatus{Peer: m.Peer, Hostname: m.Hostname, Address: m.Address})
	}
	connected := map[string]bool{}
	for _, id := range n.mesh.Connected() {
		connected[id.String()] = true
	}
	st.Peers = []PeerStatus{}
	for _, e := range n.ledger.Entries() {
		if e.Peer == n.self {
			continue
		}
		st.Peers = append(st.Peers, PeerStatus{Peer: e.Peer, Hostname: e.Hostname, Address: e.Address, Role: e.Role,
			Connected: connected[e.Peer], Alive: n.ledger.Alive(e.Peer, time.Now().Add(-30*time.Second))})
	}
	data, _ := json.MarshalIndent(st, "", "  ")
	_ = safefile.Dir(n.opts.Root, "/run/kairos/p2p", 0o700, -1, -1)
	if err := safefile.WriteFile(n.opts.Root, StatusFile, append(data, '\n'), 0o600, -1, -1); err != nil {
		fmt.Fprintf(n.log, "p2p: writing the status: %v\n", err)
	}
}

// ReadStatus reads the running node's status.
func ReadStatus(root string) (Status, error) {
	var st Status
	data, err := safefile.ReadFile(root, StatusFile)
	if err != nil {
		return st, fmt.Errorf("no status (%w): is the mesh service (kairos-agent p2p run) running?", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("%s: %w", StatusFile, err)
	}
	return st, nil
}

// Print writes the status for people.
func (st Status) Print(w io.Writer, now time.Time) {
	if age := now.Sub(st.Updated); age > 10*time.Second {
		fmt.Fprintf(w, "warning: the status is %s old: the mesh service may not be running\n", age.Round(time.Second))
	}
	role := st.Role
	if role == "" {
		role = "none yet"
	}
	fmt.Fprintf(w, "node:     %s (%s)\naddress:  %s on %s\nrole:     %s\n", st.Hostname, st.Peer, st.Address, st.Interface, role)
	if st.Waiting != "" {
		fmt.Fprintf(w, "waiting:  %s\n", st.Waiting)
	}
	var ms []string
	for _, m := range st.Masters {
		ms = append(ms, fmt.Sprintf("%s %s (%s)", m.Hostname, m.Address, m.Peer))
	}
	fmt.Fprintf(w, "masters:  %s\n\n", strings.Join(ms, ", "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tHOSTNAME\tADDRESS\tROLE\tCONNECTED\tALIVE")
	peers := slices.Clone(st.Peers)
	for _, p := range peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%v\n", p.Peer, p.Hostname, p.Address, p.Role, p.Connected, p.Alive)
	}
	tw.Flush()
}
