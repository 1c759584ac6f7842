package node

import (
	"fmt"
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

// isTrue and isFalse read a cloud-config switch the way the reset and
// upgrade sections always have: only the literal spellings count, so that
// an absent or odd value leaves the flag's choice alone.
func isTrue(m cloudconfig.Merged, key string) bool {
	v, ok := m.Get(key)
	return ok && fmt.Sprint(v) == "true"
}

func isFalse(m cloudconfig.Merged, key string) bool {
	v, ok := m.Get(key)
	return ok && fmt.Sprint(v) == "false"
}

// ResetFromConfig adds the reset section of the cloud-config to what the
// flags asked for: the config can only widen a reset (reset-oem, reboot)
// or keep the persistent partition (reset-persistent: false), never undo
// a flag.
func ResetFromConfig(m cloudconfig.Merged, o ResetOptions, reboot bool) (ResetOptions, bool) {
	if isTrue(m, "reset.reset-oem") {
		o.ResetOEM = true
	}
	if isFalse(m, "reset.reset-persistent") {
		o.KeepPersistent = true
	}
	if isTrue(m, "reset.reboot") {
		reboot = true
	}
	return o, reboot
}

// UpgradeFromConfig adds the upgrade section of the cloud-config to what
// the flags asked for: --source wins over upgrade.source; recovery and
// reboot are on when either says so.
func UpgradeFromConfig(m cloudconfig.Merged, o UpgradeOptions, reboot bool) (UpgradeOptions, bool) {
	if o.Source == "" {
		if v, ok := m.Get("upgrade.source"); ok {
			o.Source = fmt.Sprint(v)
		}
	}
	if isTrue(m, "upgrade.recovery") {
		o.Recovery = true
	}
	if isTrue(m, "upgrade.reboot") {
		reboot = true
	}
	return o, reboot
}
