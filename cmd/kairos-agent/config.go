package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/version"
)

func configCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config [show | get <key>]",
		Short: "Print the node's merged cloud-config",
		Long: `Print the cloud-config the node runs with ('config' or 'config show'): every
file with a cloud-config header in ` + strings.Join(cloudconfig.SourceDirs, ", ") + `
(in this order, later wins; mappings merge, stage steps add up), then the
kernel command line's keys; the files used are listed in a # Sources:
comment. 'config get k3s.enabled' prints one value. Files that cannot be
used are reported and left out.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := loadConfig()
			var v any = m.Values
			switch {
			case len(args) == 0 || len(args) == 1 && args[0] == "show":
			case len(args) == 2 && args[0] == "get":
				var ok bool
				if v, ok = m.Get(args[1]); !ok {
					return fmt.Errorf("%s is not set", args[1])
				}
			default:
				return fmt.Errorf("usage: kairos-agent config [show | get <key>]")
			}
			if sv, ok := v.(string); ok {
				fmt.Fprintln(cmd.OutOrStdout(), sv)
				return nil
			}
			out, err := yaml.Marshal(v)
			if err != nil {
				return err
			}
			if len(args) < 2 {
				var head strings.Builder
				head.WriteString("#cloud-config\n# Sources:\n")
				for _, f := range m.Files {
					fmt.Fprintf(&head, "#  - %s\n", f)
				}
				fmt.Fprint(cmd.OutOrStdout(), head.String())
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
}

func renderTemplateCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "render-template -f <file>",
		Short: "Render a Go template with the node's config and state",
		Long: `Render <file> as a Go template with the sprig functions and, as upstream,
.Config (the merged cloud-config, as 'config show' prints it) and .State
(what 'state' prints): {{ .Config.k3s.enabled }}, {{ .State.boot }}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			st, err := state.Collect(host.System)
			if err != nil {
				return err
			}
			t, err := template.New(file).Funcs(sprig.TxtFuncMap()).Parse(string(data))
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if err := t.Execute(&out, map[string]any{"Config": loadConfig().Values, "State": st}); err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out.Bytes())
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the template")
	cmd.MarkFlagRequired("file")
	return cmd
}

func printSchemaCmd() *cobra.Command {
	var v string
	cmd := &cobra.Command{
		Use:   "print-schema",
		Short: "Print the cloud-config language as a JSON Schema",
		Long: `Print the JSON Schema of the cloud-config keys this agent reads (for
editors and linters): generated from the same types 'validate' and boot
read. Keys it refuses (not supported yet) are left out; unknown keys are
allowed, as validate only warns about them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := json.MarshalIndent(cloudconfig.JSONSchema("https://kairos.io/"+v+"/cloud-config.json"), "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return nil
		},
	}
	cmd.Flags().StringVar(&v, "version", version.Version, "version named in the schema's $id")
	return cmd
}
