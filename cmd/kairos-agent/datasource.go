package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/cloudconfig"
)

func datasourceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "datasource",
		Short: "Fetch cloud-configs from config_url= and a CIDATA volume",
		Long: `Fetch the cloud-configs the node is given from outside its disks, into
` + cloudconfig.DatasourceDir + ` (read after /oem): the kernel command line's
config_url= (or kairos.config_url=), then user-data of a NoCloud volume
labelled CIDATA. Run by kairos-datasource.service before the boot stages.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := host.System
			cmdline, err := h.KernelCmdline()
			if err != nil {
				return err
			}
			files, err := cloudconfig.Datasources{Root: h.Root, Cmdline: cmdline, ByLabel: h.ByLabel, Log: os.Stdout}.Fetch(cmd.Context())
			for _, f := range files {
				fmt.Println("kairos-agent datasource:", f)
			}
			return err
		},
	}
}
