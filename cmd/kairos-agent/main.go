// Command kairos-agent runs on every Kairos node: boot-time mounting in the
// initramfs, install, upgrade and reset. Each command has its own file,
// which maps its flags and arguments to options of the internal/agent
// packages, where the policy lives; host.System describes the node.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/earlyboot"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/cloudconfig"
)

func main() {
	// The initramfs's /init (dracut module 90kairos).
	if os.Getpid() == 1 {
		earlyboot.Main()
	}
	root := &cobra.Command{
		Use:           "kairos-agent",
		Short:         "The Kairos node agent",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(versionCmd(), mountCmd(), stateCmd(), runStageCmd(), validateCmd(), configCmd(),
		installCmd(), manualInstallCmd(), interactiveInstallCmd(), startCmd(), datasourceCmd(), upgradeCmd(), resetCmd(), installBundleCmd(), renderTemplateCmd(), printSchemaCmd(), p2pCmd(), waitNetworkCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kairos-agent: error:", err)
		os.Exit(1)
	}
}

// tool runs one of the host's tools (reboot, poweroff); its output is not
// shown, as when these commands have always run it.
func tool(name string) error {
	_, err := host.System.Command(name)
	return err
}

// loadConfig is the node's merged cloud-config; files that cannot be read
// are reported and left out, as boot goes on without them.
func loadConfig() cloudconfig.Merged {
	cmdline, _ := host.System.KernelCmdline()
	m := cloudconfig.LoadNode(host.System.Root, cmdline)
	for _, err := range m.Skipped {
		logrus.Warnf("cloud-config skipped: %v", err)
	}
	c := m.Config()
	// debug: true in a config turns on the agent's debug log, as upstream.
	if c.Debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	// env: the agent's environment for what it runs (proxies for pulls,
	// the stages' commands), as upstream.
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	return m
}
