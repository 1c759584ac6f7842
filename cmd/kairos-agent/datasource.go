package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/cloudconfig"
)

func datasourceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "datasource",
		Short: "Fetch cloud-configs from config_url= and a CIDATA volume",
		Long: `Fetch the cloud-configs the node is given from outside its disks, into
` + cloudconfig.DatasourceDir + ` (read after /oem): the kernel command line's
config_url= (or kairos.config_url=), then user-data of a NoCloud volume
labelled CIDATA. Run by kairos-datasource.service before the boot stages.

The volume is found by reading the labels of the block devices present
from their superblocks (ext4, vfat, ISO 9660), without waiting for udev to
name them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := host.System
			cmdline, err := h.KernelCmdline()
			if err != nil {
				return err
			}
			ds := cloudconfig.Datasources{Root: h.Root, Cmdline: cmdline, ByLabel: h.ByLabel, Volumes: blockdev.Of(h).Volumes(), Log: os.Stdout}
			files, err := ds.Fetch(cmd.Context())
			for _, f := range files {
				fmt.Println("kairos-agent datasource:", f)
			}
			return err
		},
	}
	return cmd
}
