// Package start is `kairos-agent start` (kairos-agent.service): what the
// node does at the end of each boot, by the way it was booted. Live media
// booted with install-mode install unattended when the config says so;
// recovery booted from the "state reset" entry resets; an installed node
// confirms an upgraded boot and deploys its services once.
package start

import (
	"context"
	"fmt"
	"io"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// Action is what start does on a boot.
type Action int

const (
	// Nothing: the boot has nothing for start to do; Plan.Message says
	// why.
	Nothing Action = iota
	// Install to disk unattended (live media, install-mode, install.auto).
	Install
	// Reset unattended and reboot (recovery booted with kairos.reset).
	Reset
	// Deploy the config's services once (installed node).
	Deploy
)

// Plan is the decision for one boot.
type Plan struct {
	Action Action
	// ConfirmBoot clears the boot assessment first: reaching start, an
	// upgraded active came up, so it must not fall back any more.
	ConfirmBoot bool
	// Message is printed when there is nothing to do.
	Message string
}

// Kernel command-line tokens start acts on.
const (
	InstallMode = "install-mode" // the live ISO's unattended install entries
	ResetArg    = "kairos.reset" // grub's "state reset" entry
)

// Decide is what start does on a boot of mode with cmdline; installAuto is
// the config's install.auto.
func Decide(mode state.BootMode, cmdline string, installAuto bool) Plan {
	switch mode {
	case state.LiveCDBoot:
		if !host.HasArg(cmdline, InstallMode) {
			return Plan{Message: "kairos-agent start: live media without install-mode: nothing to do"}
		}
		if !installAuto {
			return Plan{Message: "kairos-agent start: install-mode, but the cloud-config does not say install.auto: true; install with 'kairos-agent install' or 'manual-install'"}
		}
		return Plan{Action: Install}
	case state.RecoveryBoot:
		if host.HasArg(cmdline, ResetArg) {
			return Plan{Action: Reset}
		}
		return Plan{Message: "kairos-agent start: recovery: nothing to deploy"}
	case state.ActiveBoot:
		return Plan{Action: Deploy, ConfirmBoot: true}
	}
	// Passive (a fallback boot) and unknown boots still deploy: the node
	// must run its services whichever image it came up from.
	return Plan{Action: Deploy}
}

// AutoDevice is the disk an unattended install takes: install.device, or
// auto (the first disk big enough that is not the boot medium) when the
// config leaves it out.
func AutoDevice(m cloudconfig.Merged) string {
	if d := m.Config().Install.Device; d != "" {
		return d
	}
	return "auto"
}

// Node carries out a Plan: the fields are the agent's commands, which
// tests replace.
type Node struct {
	Out         io.Writer
	Install     func(ctx context.Context) error
	Reset       func(ctx context.Context) error
	ConfirmBoot func() error
	Deploy      func() error
	// Warn reports a failure that must not stop the boot's deployment.
	Warn func(format string, args ...any)
}

// Run carries out p.
func (n Node) Run(ctx context.Context, p Plan) error {
	switch p.Action {
	case Install:
		return n.Install(ctx)
	case Reset:
		return n.Reset(ctx)
	case Deploy:
		if p.ConfirmBoot {
			// A failure here leaves assessment armed (the next boot may
			// fall back); the services are deployed all the same.
			if err := n.ConfirmBoot(); err != nil {
				n.Warn("clearing boot assessment: %v", err)
			}
		}
		return n.Deploy()
	}
	fmt.Fprintln(n.Out, p.Message)
	return nil
}
