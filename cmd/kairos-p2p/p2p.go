package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/service"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/p2p/node"
	"github.com/kairos-io/kairos/internal/p2p/token"
)

// rootCmd is the cluster mesh's commands: the node's mesh service (run),
// its view of the mesh (status) and new network tokens.
func rootCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kairos-p2p",
		Short: "The cluster mesh: nodes sharing a network token form a VPN and a k3s cluster",
		Long: `The cluster mesh: nodes sharing a network token form a VPN and a k3s cluster.

A program of its own, apart from kairos-agent: the mesh (libp2p) is half of
the agent's code, and a program starts by initialising every package it
holds, which the agent does several times each boot. ` + "`kairos-agent p2p ...`" + `
runs the same commands.`,
		SilenceUsage:  true,
		SilenceErrors: true,
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
	}, p2pRunCmd(), p2pStatusCmd(), versionCmd())
	return cmd
}

func p2pRunCmd() *cobra.Command {
	var configFile, root string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Join the mesh and keep the node's role (the edgevpn@kairos service)",
		Long: `Join the mesh the cloud-config's p2p block describes and stay in it: find the
other nodes holding the same network token (mDNS on the local network, and
the DHT unless p2p.disable_dht), bring up the VPN interface (edgevpn0, address
from 10.1.0.0/24 unless p2p.vpn.env says otherwise), and take the role the
mesh elects (p2p.role: auto), or the one p2p.role forces. A master gets
/etc/sysconfig/k3s (k3s server on its VPN address), a worker
/etc/sysconfig/k3s-agent (K3S_URL of the master's VPN address); the cluster
token is derived from the network token; the config's k3s and k3s-agent
blocks are merged over what the role gives. The node keeps its identity,
address and role under ` + node.StateDir + `, so a role once taken
survives reboots; the status 'p2p status' shows is in ` + node.StatusFile + `.

The service's environment (` + envFile + `) may set
` + strings.Join(envNames(), ", ") + `.

--config FILE reads that cloud-config instead of the node's merged one;
--root DIR keeps the state and writes the role's files under DIR and starts
no service (tests, chroots).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := p2pConfig(configFile)
			if err != nil {
				return err
			}
			env := map[string]string{}
			for k := range node.Env {
				env[k] = os.Getenv(k)
			}
			if !node.Enabled(c, env) {
				return errors.New("no p2p.network_token in the config: nothing to join")
			}
			s, err := node.Read(c, env)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(root, 0o755); err != nil {
				return err
			}
			opts := node.Options{Root: root, Settings: s, Log: os.Stdout}
			if root == "/" {
				h := host.System
				opts.Deploy = func(unit string, changed bool) error {
					if _, err := os.Stat("/usr/bin/k3s"); err != nil {
						return fmt.Errorf("this image has no /usr/bin/k3s (use a standard-variant image): the %s configuration is written, nothing runs it", unit)
					}
					if changed {
						return service.Restart(h, unit)
					}
					return service.Enable(h, unit)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return node.Run(ctx, opts)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "read this cloud-config instead of the node's merged configuration")
	cmd.Flags().StringVar(&root, "root", "/", "keep the state and write the role's files under this directory (and start no service)")
	return cmd
}

const envFile = "/etc/systemd/system.conf.d/edgevpn-kairos.env"

func envNames() []string {
	var out []string
	for k := range node.Env {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// p2pConfig is the config the mesh runs with: the node's merged one, or
// the file named.
func p2pConfig(file string) (*cloudconfig.Config, error) {
	if file == "" {
		return nodeConfig(), nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p, diags := cloudconfig.Parse(filepath.Clean(file), data)
	if err := diags.Err(); err != nil {
		return nil, err
	}
	return p.Config, nil
}

func p2pStatusCmd() *cobra.Command {
	var output, root string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the mesh as this node sees it: peers, VPN addresses, roles, masters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := node.ReadStatus(root)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			case "", "text":
				st.Print(cmd.OutOrStdout(), time.Now())
				return nil
			}
			return fmt.Errorf("--output %q: text or json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().StringVar(&root, "root", "/", "the root the mesh service runs with (its --root)")
	return cmd
}
