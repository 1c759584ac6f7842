package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/p2p/token"
)

// p2pCmd is the cluster mesh's commands. The mesh itself is not in this
// agent yet (validate refuses p2p:); the token it will read is made here,
// in upstream's format, so one token serves both.
func p2pCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "p2p",
		Short: "The cluster mesh's network token",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "generate-token",
		Short: "Print a new network token (p2p.network_token)",
		Long: `Print a new network token: base64 of a YAML document with fresh random
secrets (otp.dht, otp.crypto, room, rendezvous, mdns, max_message_size), the
format upstream Kairos uses, so a token made here or by upstream tooling is
the same kind. Treat it as a secret: whoever holds it can join the network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := token.Generate()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), n.Encode())
			return nil
		},
	})
	return cmd
}
