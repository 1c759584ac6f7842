package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/cloudconfig"
)

func datasourceCmd() *cobra.Command {
	var udevTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "datasource",
		Short: "Fetch cloud-configs from config_url= and a CIDATA volume",
		Long: `Fetch the cloud-configs the node is given from outside its disks, into
` + cloudconfig.DatasourceDir + ` (read after /oem): the kernel command line's
config_url= (or kairos.config_url=), then user-data of a NoCloud volume
labelled CIDATA. Run by kairos-datasource.service before the boot stages.

It first waits (at most --udev-timeout) until udev has named every block
device the kernel found, so a CIDATA volume is seen without waiting for
every other device as systemd-udev-settle would.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := host.System
			cmdline, err := h.KernelCmdline()
			if err != nil {
				return err
			}
			udevData := filepath.Join(h.Run, "udev/data")
			if _, err := os.Stat(udevData); err == nil {
				if err := blockdev.Of(h).WaitUdev(udevData, udevTimeout); err != nil {
					fmt.Println("kairos-agent datasource:", err)
				}
			}
			files, err := cloudconfig.Datasources{Root: h.Root, Cmdline: cmdline, ByLabel: h.ByLabel, Log: os.Stdout}.Fetch(cmd.Context())
			for _, f := range files {
				fmt.Println("kairos-agent datasource:", f)
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&udevTimeout, "udev-timeout", 10*time.Second, "how long to wait for udev to name the block devices present")
	return cmd
}
