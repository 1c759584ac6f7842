package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/bundle"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/node"
)

func installBundleCmd() *cobra.Command {
	var in bundle.Installer
	var localFile bool
	cmd := &cobra.Command{
		Use:   "install-bundle <target>",
		Short: "Install a bundle now (run://<image>, container://<image>)",
		Long: `Install one bundle, as the config's bundles are at first boot:
run://<image> unpacks the image to a private directory and runs its run.sh
there (CONTAINERDIR is that directory, BUNDLE_TARGET the target);
container://<image> (or docker://) copies the image's files into the root.
The image comes from a registry (HTTPS; plain HTTP only to loopback or with
--allow-insecure-registries), or with --local-file from a 'docker save' or
OCI archive on this node (airgap): run:///home/kairos/bundle.tar.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Geteuid() != 0 {
				return fmt.Errorf("installing a bundle needs root")
			}
			in.Out = os.Stdout
			in.Tmp = node.SpoolDir(host.System)
			return in.InstallTarget(cmd.Context(), args[0], localFile)
		},
	}
	cmd.Flags().BoolVar(&localFile, "local-file", os.Getenv("LOCAL_FILE") == "true", "the target names an image archive on this node (env LOCAL_FILE=true)")
	cmd.Flags().StringVar(&in.Root, "root-path", "/", "where container:// bundles' files go")
	cmd.Flags().BoolVar(&in.Insecure, "allow-insecure-registries", false, "allow plain-HTTP registries")
	return cmd
}
