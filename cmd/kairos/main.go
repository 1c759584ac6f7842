// Command kairos builds Kairos images and artifacts through BuildKit.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	artifactscmd "github.com/kairos-io/kairos/internal/artifacts/command"
	"github.com/kairos-io/kairos/internal/version"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	logrus.SetFormatter(&logrus.TextFormatter{DisableTimestamp: false, FullTimestamp: true, TimestampFormat: "15:04:05"})
	root := &cobra.Command{
		Use:   "kairos",
		Short: "Build Kairos immutable OS images and their boot media",
		Long: `kairos turns a Linux distribution into a Kairos image (an immutable,
Kubernetes-ready OS) and writes its boot media, using BuildKit as the engine.

It talks to the daemon named by $BUILDKIT_HOST, or starts a private one
(state under ~/.cache/kairos/buildkit) and reuses it on later runs.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var debug bool
	root.PersistentFlags().BoolVar(&debug, "debug", false, "verbose logging")
	root.PersistentPreRun = func(*cobra.Command, []string) {
		if debug {
			logrus.SetLevel(logrus.DebugLevel)
		}
	}
	root.AddCommand(newBuildCmd(), newReleaseCmd(), artifactscmd.New(), newBaseCmd(), newFrontendImageCmd(), &cobra.Command{
		Use:   "version",
		Short: "Print the version of this tool",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version.Version) },
	})
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kairos: error:", err)
		os.Exit(1)
	}
}
