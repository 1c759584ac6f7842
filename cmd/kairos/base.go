package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/internal/baseimage"
)

func newBaseCmd() *cobra.Command {
	var flavor, release, baseImage, cacheDir, plat string
	cmd := &cobra.Command{
		Use:   "base --flavor <distro>",
		Short: "Resolve (or bootstrap) a flavor's base image and print it as a BuildKit context",
		Long: `Find the distro base image of a flavor: its registry image when the registry
answers, else the rootfs bootstrapped from the distro mirror (cached under
~/.cache/kairos/base). Prints the value for a "base" named context:

  docker-image://<ref>                    registry image
  oci-layout://<layout dir>@sha256:<...>  bootstrapped OCI layout

so offline builds with buildctl or buildx can reuse it:
  buildx:   --build-context base=oci-layout://<dir>@sha256:<...>
  buildctl: --oci-layout base=<dir> --opt context:base=oci-layout://base@sha256:<...>`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flavor == "" {
				return fmt.Errorf("--flavor is required")
			}
			cat, err := flavors.Load()
			if err != nil {
				return err
			}
			f, err := cat.Lookup(flavor, release)
			if err != nil {
				return err
			}
			cache, err := cacheRoot(cacheDir)
			if err != nil {
				return err
			}
			var names []string
			if plat != "" {
				names = []string{plat}
			}
			plats, err := parsePlatforms(names, "")
			if err != nil {
				return err
			}
			platform := plats[0]
			r := baseimage.Resolver{CacheDir: filepath.Join(cache, "base"), Arch: platform.Architecture}
			b, err := r.Resolve(cmd.Context(), f, baseImage)
			if err != nil {
				return err
			}
			if b.Layout != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "oci-layout://%s@%s\n", b.Layout, b.Digest)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "docker-image://%s\n", b.Ref)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&flavor, "flavor", "", "distro flavor")
	fl.StringVar(&release, "flavor-release", "", "flavor release when the flavor has several")
	fl.StringVar(&baseImage, "base-image", "", "base image reference instead of the flavor's")
	fl.StringVar(&cacheDir, "cache-dir", "", "cache directory (default ~/.cache/kairos)")
	fl.StringVar(&plat, "platform", "", "platform of the base, e.g. linux/arm64 (default: this machine's; a foreign one bootstraps under QEMU user emulation)")
	return cmd
}

// cacheRoot is --cache-dir or ~/.cache/kairos.
func cacheRoot(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "kairos"), nil
}
