// Package command is the `artifacts` command line, shared by the kairos CLI
// and the kairos-frontend binary, which runs it inside BuildKit for the
// frontend's artifact targets: one implementation, one set of flags.
package command

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/artifacts"
	"github.com/kairos-io/kairos/internal/bytesize"
	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/internal/rootfs"
)

// New returns the artifacts command.
func New() *cobra.Command {
	var (
		src, output, name, compression, netbootURL, tmp, cloudConfig, diskSize, blockCache, platform string
	)
	cmd := &cobra.Command{
		Use:   "artifacts <" + strings.Join(artifacts.Kinds, "|") + "|all>... --source <src>",
		Short: "Write boot media of a Kairos image, as an ordinary user",
		Long: `Write the boot media of a Kairos image as plain files, in Go: no root, no
mounts, no loop devices, no daemon. Kinds:

  iso       <name>.iso: hybrid live ISO (CD and USB, BIOS and UEFI; UEFI only on arm64)
  recovery  <name>.squashfs: the root file system
  netboot   <name>-kernel, <name>-initrd, <name>.squashfs, <name>.ipxe
  raw       <name>.raw: installed-system disk image (GPT: COS_GRUB EFI,
            COS_OEM, COS_RECOVERY, COS_STATE with active.img and passive.img,
            COS_PERSISTENT), sparse
  qcow2     <name>.qcow2: the same disk as qcow2 (zero clusters not stored)
  all       every kind above

Sources (--source):
  ` + strings.Join(rootfs.Kinds, "\n  ") + `

<name> defaults to KAIROS_ARTIFACT from the image's /etc/kairos-release; every
file gets a <file>.sha256, and appears under its final name only when
complete. SOURCE_DATE_EPOCH stamps the file systems (reproducible output).`,
		Example: `  kairos artifacts iso --source oci-archive:build/kairos-debian-bookworm-core-amd64-generic-v1.0.0.oci.tar --cloud-config config.yaml
  kairos artifacts recovery netboot --source oci-archive:build/kairos-debian-bookworm-core-amd64-generic-v1.0.0.oci.tar
  kairos artifacts netboot --source docker-image://127.0.0.1:5000/kairos/debian:v1.0.0 --netboot-url http://10.0.2.2:8080`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, kinds []string) error {
			if src == "" {
				return fmt.Errorf("--source is required (%s)", strings.Join(rootfs.Kinds, ", "))
			}
			epoch, err := fstree.SourceDateEpoch()
			if err != nil {
				return err
			}
			if slices.Contains(kinds, "all") {
				kinds = artifacts.Kinds
			}
			var size int64
			if diskSize != "" {
				if size, err = bytesize.Parse(diskSize); err != nil {
					return fmt.Errorf("--disk-size: %w", err)
				}
			}
			var cc []byte
			if cloudConfig != "" {
				if cc, err = os.ReadFile(cloudConfig); err != nil {
					return fmt.Errorf("--cloud-config: %w", err)
				}
			}
			var plat *v1.Platform
			if platform != "" {
				p, err := platforms.Parse(platform)
				if err != nil {
					return fmt.Errorf("--platform: %w", err)
				}
				p = platforms.Normalize(p)
				plat = &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
			}
			logrus.Infof("reading %s", src)
			tree, err := rootfs.Open(cmd.Context(), src, tmp, plat)
			if err != nil {
				return err
			}
			defer tree.Close()
			files, err := artifacts.Run(cmd.Context(), tree.Root, output, artifacts.Profile{
				Kinds: kinds, Name: name, Compression: compression, NetbootURL: netbootURL,
				Epoch: epoch, Progress: os.Stderr, CloudConfig: cc, DiskSize: size, BlockCache: blockCache,
			})
			for _, f := range files {
				fmt.Fprintln(cmd.OutOrStdout(), f)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&src, "source", "s", "", "image or root file system to read")
	fl.StringVarP(&output, "output", "o", "build", "directory for the results")
	fl.StringVar(&name, "name", "", "base name of the files (default: KAIROS_ARTIFACT of the image)")
	fl.StringVar(&compression, "compression", "", "squashfs compression: gzip (default), xz, zstd")
	fl.StringVar(&netbootURL, "netboot-url", "", "default base URL in the iPXE script")
	fl.StringVar(&cloudConfig, "cloud-config", "", "cloud-config put at /config.yaml of the ISO (the live system applies it) and at /oem/90_custom.yaml of the disks")
	fl.StringVar(&diskSize, "disk-size", "", "size of the raw/qcow2 disk, e.g. 16G (default: what the image needs plus 2 GiB of COS_PERSISTENT)")
	fl.StringVar(&platform, "platform", "", "image of a multi-platform source to write media of, e.g. linux/arm64 (default: this machine's); the writers run natively whatever the image's architecture")
	fl.StringVar(&tmp, "tmp", "", "directory for the content spool of image sources (default $TMPDIR)")
	fl.StringVar(&blockCache, "block-cache", "", "directory keeping compressed squashfs blocks between runs, so a rebuild after a small change compresses only what changed (the output does not depend on it)")
	return cmd
}
