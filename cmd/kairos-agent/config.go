package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

func configCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config [get <key>]",
		Short: "Print the node's merged cloud-config",
		Long: `Print the cloud-config the node runs with: every file with a cloud-config
header in ` + strings.Join(cloudconfig.SourceDirs, ", ") + ` (in this order,
later wins; mappings merge, stage steps add up). 'config get k3s.enabled'
prints one value. Files that cannot be read are reported and left out.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := loadConfig()
			var v any = m.Values
			if len(args) == 2 && args[0] == "get" {
				var ok bool
				if v, ok = m.Get(args[1]); !ok {
					return fmt.Errorf("%s is not set", args[1])
				}
			} else if len(args) > 0 {
				return fmt.Errorf("usage: kairos-agent config [get <key>]")
			}
			if sv, ok := v.(string); ok {
				fmt.Fprintln(cmd.OutOrStdout(), sv)
				return nil
			}
			out, err := yaml.Marshal(v)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				fmt.Fprint(cmd.OutOrStdout(), "#cloud-config\n")
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
}
