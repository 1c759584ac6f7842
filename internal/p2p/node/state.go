package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/kairos-io/kairos/internal/p2p/ledger"
	"github.com/kairos-io/kairos/internal/p2p/mesh"
	"github.com/kairos-io/kairos/internal/safefile"
)

// Paths under the node's root. The state lives on COS_PERSISTENT
// (/usr/local), so a node keeps its identity, address and role across
// reboots and upgrades, and loses them with a reset, as it loses the rest
// of its cluster data.
const (
	StateDir     = "/usr/local/.kairos/p2p"
	IdentityFile = StateDir + "/identity"   // the libp2p host key: the node's peer ID
	StateFile    = StateDir + "/state.json" // address, role, masters
	StatusFile   = "/run/kairos/p2p/status.json"
)

// State is what a node remembers of the mesh.
type State struct {
	// Address is the VPN address the node holds.
	Address netip.Addr `json:"address,omitzero"`
	// Role is the role the node took (never given up: cluster.Elect).
	Role string `json:"role,omitempty"`
	// Masters are the control plane as this node last saw it, so that a
	// master gone away is still known (and not replaced) after a restart.
	Masters []ledger.Master `json:"masters,omitempty"`
	// Starts counts the service's starts: the high half of the ledger
	// entry's sequence number, so it grows across restarts whatever the
	// clock.
	Starts uint64 `json:"starts"`
}

// LoadIdentity reads the node's host key, making one the first time.
func LoadIdentity(root string) (crypto.PrivKey, error) {
	data, err := safefile.ReadFile(root, IdentityFile)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (remove it to make a new identity)", IdentityFile, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	k, err := mesh.NewIdentity()
	if err != nil {
		return nil, err
	}
	data, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := safefile.Dir(root, StateDir, 0o700, -1, -1); err != nil {
		return nil, err
	}
	if err := safefile.WriteFile(root, IdentityFile, data, 0o600, -1, -1); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadState reads the node's state; none yet is the zero State.
func LoadState(root string) (State, error) {
	var s State
	data, err := safefile.ReadFile(root, StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return State{}, fmt.Errorf("%s: %w", StateFile, err)
	}
	return s, nil
}

// Save writes the state.
func (s State) Save(root string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := safefile.Dir(root, StateDir, 0o700, -1, -1); err != nil {
		return err
	}
	return safefile.WriteFile(root, StateFile, append(data, '\n'), 0o600, -1, -1)
}
