// Package service enables the services the agent deploys (k3s, k3s-agent)
// on either init system a Kairos image may run: systemd or OpenRC.
package service

import (
	"fmt"
	"os"
	"strings"

	"github.com/kairos-io/kairos/internal/agent/host"
)

// Systemd says whether systemd is the running init: it creates
// /run/systemd/system at boot, which is how sd_booted(3) tells.
func Systemd(h *host.Host) bool {
	_, err := os.Stat(h.SystemdRun)
	return err == nil
}

// Enable enables and starts unit without waiting for it (k3s takes
// minutes to come up, and start must not hold the boot that long).
func Enable(h *host.Host, unit string) error {
	if Systemd(h) {
		out, err := h.Command("systemctl", "enable", "--now", "--no-block", unit)
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	unit = OpenRCName(unit)
	for _, args := range [][]string{{"rc-update", "add", unit, "default"}, {"rc-service", unit, "start"}} {
		if out, err := h.Command(args[0], args[1:]...); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// Restart restarts a service whose configuration changed (enabling it
// too, should it not be).
func Restart(h *host.Host, unit string) error {
	if err := Enable(h, unit); err != nil {
		return err
	}
	args := []string{"systemctl", "restart", "--no-block", unit}
	if !Systemd(h) {
		args = []string{"rc-service", OpenRCName(unit), "restart"}
	}
	if out, err := h.Command(args[0], args[1:]...); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// OpenRCName is a unit's OpenRC service: a systemd template instance
// (edgevpn@kairos) is a script of its own there (edgevpn-kairos).
func OpenRCName(unit string) string { return strings.ReplaceAll(unit, "@", "-") }
