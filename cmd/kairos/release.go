package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/frontend"
	"github.com/kairos-io/kairos/internal/baseimage"
	"github.com/kairos-io/kairos/internal/builders"
	"github.com/kairos-io/kairos/internal/matrix"
	"github.com/kairos-io/kairos/internal/pipeline"
)

type releaseFlags struct {
	file, registry, output string
	version                string
	signKey                string
	filter                 matrix.Filter
	targets                []string
	agents                 []string
	writer, k3s            string
	progress, cacheDir     string
	insecure, dryRun       bool
	builders               []string
	cacheRepo              string
	provenance             bool
}

func newReleaseCmd() *cobra.Command {
	f := &releaseFlags{}
	cmd := &cobra.Command{
		Use:   "release -f release.yaml --registry <host/org>",
		Short: "Build a release's matrix, push its images and write its media with checksums",
		Long: `Build every entry of a release matrix (release.yaml: version, flavors, variants,
arches, models, k3s versions; see internal/matrix), push each image to
<registry>/<flavor>:<flavor_release>-<variant>-<arch>-<model>-<version>[-k3s<version>],
and write its media to <output>/release/<version>/, with one SHA256SUMS for
every file and release.json listing each image's digest and the files.

Without -f the matrix is every flavor file, both variants, amd64 and the
generic model. An entry that fails is reported in the summary with its reason and fails the
release; the others still complete. --flavor, --flavor-release, --variant,
--arch and --model narrow the matrix.

Builders are BuildKit daemons: --builder name=<address>[,platforms=...][,ca=,cert=,key=][,jobs=N]
(repeatable; default $BUILDKIT_HOST, else the private local daemon). Each
entry goes to a builder of its platform (the daemon's workers' platforms
unless named), the builders work at once, and each pushes its images
itself, with BuildKit's provenance. Every build imports and exports its
cache in <registry>/kairos-cache (mode=max; --cache-repo), so a fresh builder
reuses the others' work. A run again skips the entries already pushed with
the same inputs (entry, base image digest, embedded binaries, this program).
The builders reach the registry themselves: a plain-HTTP one must be in
their buildkitd.toml ([registry."host:port"] http = true).`,
		Example: `  kairos release -f release.yaml --registry registry.example.com/kairos --output build
  kairos release -f release.yaml --registry 127.0.0.1:5000/kairos --flavor debian --variant core --dry-run
  kairos release -f release.yaml --registry registry.example.com/kairos \
    --builder amd=tcp://10.0.0.4:1234,ca=ca.pem,cert=cert.pem,key=key.pem \
    --builder arm=tcp://10.0.0.5:1234,platforms=linux/arm64,ca=ca.pem,cert=cert.pem,key=key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRelease(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "the release matrix (default: every flavor file, both variants, amd64, generic)")
	fl.StringVar(&f.version, "version", "", "the release's version (overrides the matrix file's)")
	fl.StringVar(&f.registry, "registry", "", "where the images go: <host>[:port]/<org>")
	fl.StringVarP(&f.output, "output", "o", "build", "directory; the media go to <output>/release/<version>/")
	fl.StringVar(&f.filter.Flavor, "flavor", "", "only this flavor")
	fl.StringVar(&f.filter.FlavorRelease, "flavor-release", "", "only this flavor release")
	fl.StringVar(&f.filter.Variant, "variant", "", "only this variant (core, standard)")
	fl.StringVar(&f.filter.Arch, "arch", "", "only this arch")
	fl.StringVar(&f.filter.Model, "model", "", "only this model")
	fl.StringSliceVar(&f.targets, "target", []string{"iso"}, "media of each entry besides the image (iso, netboot, raw, qcow2, recovery)")
	fl.StringSliceVar(&f.agents, "agent", nil, "kairos-agent binaries to embed, one per architecture of the matrix, told apart by their ELF headers, each with the mesh's kairos-p2p beside it (kairos-p2p-<arch> for kairos-agent-<arch>) (repeatable; default: kairos-agent and kairos-agent-<arch> next to this program)")
	fl.StringVar(&f.writer, "writer", "", "kairos-frontend binary writing the media (default: next to this program)")
	fl.StringVar(&f.k3s, "k3s", "", "k3s binary for the standard entries instead of the release download (air-gapped)")
	fl.StringVar(&f.progress, "progress", "plain", "build progress, each line prefixed with its entry: plain, quiet, rawjson")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "cache directory (default ~/.cache/kairos)")
	fl.BoolVar(&f.insecure, "insecure", false, "reach a registry that is not on loopback over plain HTTP")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the entries and their tags, build nothing")
	fl.StringVar(&f.signKey, "sign-key", "", "cosign private key: sign every image and SHA256SUMS (COSIGN_PASSWORD in the environment); cosign is $KAIROS_COSIGN or on PATH")
	fl.StringArrayVar(&f.builders, "builder", nil, "a BuildKit daemon: name=<address>[,platforms=linux/amd64;linux/arm64][,ca=FILE,cert=FILE,key=FILE][,server-name=NAME][,jobs=N] (repeatable)")
	fl.StringVar(&f.cacheRepo, "cache-repo", "", "repository of the builds' registry cache (default <registry>/kairos-cache; off: none)")
	fl.BoolVar(&f.provenance, "provenance", true, "attach BuildKit's SLSA provenance (mode=max) to every image")
	cmd.AddCommand(newReleaseVerifyCmd())
	return cmd
}

func runRelease(cmd *cobra.Command, f *releaseFlags) error {
	if f.registry == "" {
		return errors.New("--registry is required: <host>[:port]/<org>")
	}
	m := matrix.File{Version: f.version}
	if f.file != "" {
		data, err := os.ReadFile(f.file)
		if err != nil {
			return err
		}
		if m, err = matrix.Parse(f.file, data); err != nil {
			return err
		}
		if f.version != "" {
			m.Version = f.version
		}
	}
	if m.Version == "" {
		return errors.New("the release has no version: --version, or version: in the matrix file")
	}
	cat, err := flavors.Load()
	if err != nil {
		return err
	}
	entries, err := m.Expand(cat, f.filter)
	if err != nil {
		return err
	}
	var specs []builders.Spec
	for _, b := range f.builders {
		s, err := builders.Parse(b)
		if err != nil {
			return fmt.Errorf("--builder: %w", err)
		}
		if slices.ContainsFunc(specs, func(o builders.Spec) bool { return o.Name == s.Name }) {
			return fmt.Errorf("--builder: two builders are named %s", s.Name)
		}
		specs = append(specs, s)
	}
	if len(specs) == 0 {
		specs = []builders.Spec{builders.Default()}
	}
	cacheRepo := f.cacheRepo
	switch cacheRepo {
	case "":
		cacheRepo = strings.TrimSuffix(f.registry, "/") + "/kairos-cache"
	case "off", "none":
		cacheRepo = ""
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "release %s: %d entries\n", m.Version, len(entries))
	for _, e := range entries {
		fmt.Fprintf(out, "  %s -> %s\n", e.ID(), e.Ref(f.registry))
	}
	if f.dryRun {
		return nil
	}
	if f.signKey != "" {
		if _, err := os.Stat(f.signKey); err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
	}
	cache, err := cacheRoot(f.cacheDir)
	if err != nil {
		return err
	}
	var bs []*builders.Builder
	for _, s := range specs {
		b, err := builders.Connect(cmd.Context(), s, cache)
		if err != nil {
			return err
		}
		defer b.Client.Close()
		fmt.Fprintf(out, "builder %s: %s, %d at a time\n", b.Spec, b.PlatformNames(), b.Jobs)
		bs = append(bs, b)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	agents, writer := f.agents, f.writer
	if len(agents) == 0 {
		agents = []string{filepath.Join(filepath.Dir(self), "kairos-agent")}
		for _, arch := range []string{"amd64", "arm64"} {
			if c := filepath.Join(filepath.Dir(self), "kairos-agent-"+arch); arch != runtime.GOARCH && fileExists(c) {
				agents = append(agents, c)
			}
		}
	}
	if writer == "" {
		writer = filepath.Join(filepath.Dir(self), frontend.ToolsFile)
	}
	args := map[string]string{}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		args["SOURCE_DATE_EPOCH"] = v
	}
	_, err = pipeline.Run(cmd.Context(), pipeline.Config{
		Version: m.Version, Registry: f.registry, CacheRepo: cacheRepo,
		Dir: filepath.Join(f.output, "release", m.Version), Catalog: cat, Entries: entries, Builders: bs,
		Targets: f.targets, Agents: agents, Writer: writer, K3s: f.k3s,
		Base: func(ctx context.Context, e matrix.Entry) (baseimage.Base, error) {
			r := baseimage.Resolver{CacheDir: filepath.Join(cache, "base"), Arch: e.Arch}
			return r.Resolve(ctx, e.Plan.Flavor, "")
		},
		BuildArgs: args, Self: self, SignKey: f.signKey, Insecure: f.insecure, NoProvenance: !f.provenance,
		Progress: f.progress, Out: out,
	})
	return err
}
