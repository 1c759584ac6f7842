package node

import (
	"io"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/stages"
)

// New is the node h describes, booted as cmdline says, for an upgrade, a
// reset or confirming a boot.
func New(h *host.Host, cmdline string, st stages.Set, out io.Writer) *Node {
	return &Node{
		Mode: state.DetectBootMode(cmdline), Device: LabelIn(h.ByLabel), Mounts: h.Mounts,
		WorkDir: h.NodeWorkDir, LockFile: h.LockFile, Stages: st, Out: out,
	}
}

// ResetFromConfig adds the reset section of the cloud-config to what the
// flags asked for: the config can only widen a reset (reset-oem, reboot)
// or keep the persistent partition (reset-persistent: false), never undo
// a flag.
func ResetFromConfig(m cloudconfig.Merged, o ResetOptions, reboot bool) (ResetOptions, bool) {
	r := m.Config().Reset
	if r.ResetOEM {
		o.ResetOEM = true
	}
	if r.ResetPersistent != nil && !*r.ResetPersistent {
		o.KeepPersistent = true
	}
	if r.Reboot {
		reboot = true
	}
	return o, reboot
}

// UpgradeFromConfig adds the upgrade section of the cloud-config to what
// the flags asked for: --source wins over upgrade.source; recovery and
// reboot are on when either says so.
func UpgradeFromConfig(m cloudconfig.Merged, o UpgradeOptions, reboot bool) (UpgradeOptions, bool) {
	u := m.Config().Upgrade
	if o.Source == "" {
		o.Source = u.Source
	}
	if o.VerifyKey == "" {
		o.VerifyKey = u.VerifyKey
	}
	if u.Recovery {
		o.Recovery = true
	}
	if u.Reboot {
		reboot = true
	}
	return o, reboot
}
