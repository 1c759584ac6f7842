package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/frontendimage"
	"github.com/kairos-io/kairos/internal/version"
)

func newFrontendImageCmd() *cobra.Command {
	var (
		frontendBin string
		agents      map[string]string
		output      string
		ref         string
		push        bool
		insecure    bool
	)
	cmd := &cobra.Command{
		Use:   "frontend-image --frontend <bin> --agent linux_amd64=<bin> [--push] --tag <ref>",
		Short: "Assemble the gateway image of the Kairos BuildKit frontend",
		Long: `Assemble the image BuildKit runs as a gateway frontend (buildctl --frontend
gateway.v0 --opt source=<ref>, or "# syntax=<ref>" on the first line of kairos.yaml):
a scratch image with /kairos-frontend as entrypoint and the kairos-agent of each
platform, with the mesh's kairos-p2p beside it, under /agents/<os>_<arch>/.
Written as an OCI archive, and pushed when asked. No daemon is needed; the result is reproducible (SOURCE_DATE_EPOCH).`,
		Example: `  kairos frontend-image --frontend build/bin/kairos-frontend \
    --agent linux_amd64=build/bin/kairos-agent --tag 127.0.0.1:5000/kairos/frontend:dev \
    --output build/kairos-frontend.oci.tar --push`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if frontendBin == "" || len(agents) == 0 || ref == "" {
				return fmt.Errorf("--frontend, --agent and --tag are required")
			}
			epoch := time.Unix(0, 0).UTC()
			if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
				sec, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)
				}
				epoch = time.Unix(sec, 0).UTC()
			}
			img, err := frontendimage.Build(frontendimage.Spec{
				Frontend: frontendBin, Agents: agents, Version: version.Version,
				Arch: runtime.GOARCH, Epoch: epoch,
			})
			if err != nil {
				return err
			}
			dgst, err := img.Digest()
			if err != nil {
				return err
			}
			if output != "" {
				if err := os.MkdirAll(filepath.Dir(output), 0o755); err != nil {
					return err
				}
				if err := frontendimage.WriteArchive(img, ref, output); err != nil {
					return err
				}
				logrus.Infof("wrote %s (%s)", output, dgst)
			}
			if push {
				logrus.Infof("pushing %s", ref)
				if _, err := frontendimage.Push(img, ref, insecure); err != nil {
					return err
				}
				logrus.Infof("pushed %s@%s", ref, dgst)
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref+"@"+dgst.String())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&frontendBin, "frontend", "", "static kairos-frontend binary (for this machine's architecture)")
	fl.StringToStringVar(&agents, "agent", nil, "static kairos-agent per platform, <os>_<arch>=<file>, kairos-p2p beside it (repeatable)")
	fl.StringVarP(&output, "output", "o", "", "write the image as an OCI archive to this file")
	fl.StringVarP(&ref, "tag", "t", "", "image reference recorded in the archive and pushed to")
	fl.BoolVar(&push, "push", false, "push the image to --tag")
	fl.BoolVar(&insecure, "insecure", false, "allow plain HTTP for registries other than localhost")
	return cmd
}
