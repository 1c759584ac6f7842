// Command kairos-p2p is the cluster mesh of a Kairos node: the service
// edgevpn@kairos runs (kairos-p2p run), its status and network tokens.
// kairos-agent p2p runs it; it is a program of its own so that the
// agent, which every boot starts several times (in the initramfs and for
// each cloud-config stage), does not initialise libp2p each time.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/version"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kairos-p2p: error:", err)
		os.Exit(1)
	}
}

// nodeConfig is the node's merged cloud-config, as the agent reads it;
// files that cannot be read are said and left out.
func nodeConfig() *cloudconfig.Config {
	cmdline, _ := host.System.KernelCmdline()
	m := cloudconfig.LoadNode(host.System.Root, cmdline)
	for _, err := range m.Skipped {
		fmt.Fprintf(os.Stderr, "kairos-p2p: cloud-config skipped: %v\n", err)
	}
	return m.Config()
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version.Version) },
	}
}
