package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/netwait"
)

func waitNetworkCmd() *cobra.Command {
	var (
		service string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "wait-network [--for <service>] [--timeout <duration>]",
		Short: "Wait for a default route, saying on the console why a service waits",
		Long: `Returns at once, silently, when the node has a default route. Otherwise
says on every console what is missing (no carrier, no address, no
gateway, per interface), again every minute, and once the network is up;
after --timeout it says that the service starts without one and returns.
It never fails for want of a network: the service then starts and
reports its own errors.

k3s and k3s-agent run it before they start (they take their node address
from the default route): a node without network still boots to a login
prompt, and the console says why k3s is not up yet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := netwait.Reader{Proc: host.System.Proc, Sys: host.System.Sys, IPv4: ipv4Addrs}
			out := consoles(cmd.ErrOrStderr())
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			said := false
			s, err := netwait.Wait(ctx, r.Read, 2*time.Second, time.Minute, func(waited time.Duration, s netwait.State) {
				first := !said
				said = true
				switch {
				case s.Ready():
					fmt.Fprintf(out, "%s: the network is up after %s (%s)\n", service, waited.Round(time.Second), s.Why())
				case first:
					fmt.Fprintf(out, "%s waits for the network: %s; it starts when there is a default route, at most %s\n", service, s.Why(), timeout)
				default:
					fmt.Fprintf(out, "%s still waits for the network after %s: %s\n", service, waited.Round(time.Second), s.Why())
				}
			})
			if errors.Is(err, context.DeadlineExceeded) {
				fmt.Fprintf(out, "%s starts without a default route after %s (%s); it needs one to pick its node address: on a network without a gateway, give the node a default route in its network config\n", service, timeout, s.Why())
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&service, "for", "the service", "the service that waits, named in the messages")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait at most")
	return cmd
}

// ipv4Addrs counts an interface's global IPv4 addresses (link-local
// 169.254/16 ones reach no gateway).
func ipv4Addrs(name string) int {
	i, err := net.InterfaceByName(name)
	if err != nil {
		return 0
	}
	addrs, err := i.Addrs()
	if err != nil {
		return 0
	}
	n := 0
	for _, a := range addrs {
		if ip, _, err := net.ParseCIDR(a.String()); err == nil && ip.To4() != nil && ip.IsGlobalUnicast() && !ip.IsLinkLocalUnicast() {
			n++
		}
	}
	return n
}
