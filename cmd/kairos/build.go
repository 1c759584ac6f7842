package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/frontend"
	"github.com/kairos-io/kairos/internal/baseimage"
	"github.com/kairos-io/kairos/internal/binfmt"
	"github.com/kairos-io/kairos/internal/buildkitd"
	"github.com/kairos-io/kairos/internal/localbuild"
)

type buildFlags struct {
	targets   []string
	args      map[string]string
	flavor    string
	release   string
	variant   string
	version   string
	model     string
	baseImage string
	agents    []string
	writer    string
	k3s       string
	overlay   string
	k3sVer    string
	output    string
	progress  string
	cacheDir  string
	noCache   bool
	spec      string
	context   string
	platforms []string
}

func newBuildCmd() *cobra.Command {
	f := &buildFlags{}
	var targetHelp strings.Builder
	for _, t := range frontend.Targets {
		fmt.Fprintf(&targetHelp, "  %-9s %s\n", t.Name, t.Description)
	}
	cmd := &cobra.Command{
		Use:   "build --flavor <distro> [--target <target>]...",
		Short: "Build a Kairos image and its artifacts",
		Long: `Build a Kairos image from a distro base and write the requested targets
to the output directory, named kairos-<flavor>-<release>-<variant>-<arch>-<model>-<version>.

Targets:
` + targetHelp.String() + `
The base image comes from the flavor's registry when reachable; otherwise it
is bootstrapped from the distro mirror (Debian: mmdebstrap) and cached under
~/.cache/kairos/base.`,
		Example: `  kairos build --flavor debian --target iso --version v1.0.0
  kairos build --flavor debian --target image --target iso --output build
  kairos build -f kairos.yaml --target all
  kairos build --flavor debian --variant standard --k3s ./k3s --target iso`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBuild(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringSliceVarP(&f.targets, "target", "t", []string{string(frontend.TargetImage)}, "targets to build (repeatable): "+strings.Join(frontend.TargetNames(), ", "))
	fl.StringVar(&f.flavor, "flavor", "", "distro flavor (FLAVOR): a name of flavors/ (its default release unless --flavor-release) or an upstream alias (opensuse-leap, rockylinux)")
	fl.StringVar(&f.release, "flavor-release", "", "flavor release (FLAVOR_RELEASE); default: the flavor's default release")
	fl.StringVar(&f.variant, "variant", "", "core or standard (VARIANT); default core")
	fl.StringVar(&f.version, "version", "", "KAIROS_VERSION of the image (VERSION); default "+frontend.DefaultVersion)
	fl.StringVar(&f.model, "model", "", "hardware model (MODEL); default generic")
	fl.StringVar(&f.baseImage, "base-image", "", "base image reference instead of the flavor's (BASE_IMAGE)")
	fl.StringToStringVar(&f.args, "build-arg", nil, "extra build arguments KEY=VALUE, as in the Earthfile")
	fl.StringSliceVar(&f.agents, "agent", nil, "kairos-agent binaries to embed, one per target architecture, told apart by their ELF headers, each with the mesh's kairos-p2p beside it (kairos-p2p-<arch> for kairos-agent-<arch>) (repeatable; default: kairos-agent, and kairos-agent-<arch> for other architectures, next to this program)")
	fl.StringVar(&f.writer, "writer", "", "static kairos-frontend binary that writes the artifacts inside BuildKit (default: kairos-frontend next to this program)")
	fl.StringVar(&f.k3sVer, "k3s-version", "", "k3s release of the standard variant (K3S_VERSION); default "+frontend.DefaultK3SVersion)
	fl.StringVar(&f.k3s, "k3s", "", "k3s binary to embed in the standard variant instead of downloading the release (air-gapped builds)")
	fl.StringVar(&f.overlay, "overlay", "", "directory copied over the image root after Kairos' own files")
	fl.StringVarP(&f.output, "output", "o", "build", "directory for the results")
	fl.StringVar(&f.progress, "progress", "auto", "progress output: auto, plain, tty, quiet, rawjson")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "cache directory (default ~/.cache/kairos)")
	fl.BoolVar(&f.noCache, "no-cache", false, "run every build step again (package downloads stay cached)")
	fl.StringVarP(&f.spec, "file", "f", "", "build spec (kairos.yaml); flags and --build-arg override its values")
	fl.StringSliceVar(&f.platforms, "platform", nil, "target platforms, comma-separated (linux/amd64, linux/arm64; ARCH=amd64,arm64 as a build arg); default this machine's. "+
		"A foreign one runs under QEMU user emulation (qemu-user-static, registered with binfmt_misc when missing); several make one multi-platform image index and each platform's media")
	fl.StringVar(&f.context, "context", "", "build context for the spec's overlay and cloud_config paths (default: the spec's directory)")
	return cmd
}

func runBuild(cmd *cobra.Command, f *buildFlags) error {
	ctx := cmd.Context()
	args := map[string]string{}
	// SOURCE_DATE_EPOCH in the environment makes the build reproducible,
	// as with other build tools; --build-arg still wins.
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		args["SOURCE_DATE_EPOCH"] = v
	}
	for k, v := range f.args {
		args[k] = v
	}
	for k, v := range map[string]string{
		frontend.ArgFlavor: f.flavor, frontend.ArgFlavorRelease: f.release, frontend.ArgVariant: f.variant,
		frontend.ArgVersion: f.version, frontend.ArgModel: f.model, frontend.ArgBaseImage: f.baseImage,
		frontend.ArgK3SVersion: f.k3sVer,
	} {
		if v != "" {
			args[k] = v
		}
	}
	cat, err := flavors.Load()
	if err != nil {
		return err
	}
	// The frontend reads the spec itself; here it only fills in what the
	// plans below (names, base image) need, flags taking precedence.
	planArgs := maps.Clone(args)
	if f.spec != "" {
		data, err := os.ReadFile(f.spec)
		if err != nil {
			return fmt.Errorf("reading the build spec: %w", err)
		}
		spec, err := frontend.ParseSpec(f.spec, data)
		if err != nil {
			return err
		}
		planArgs = spec.Args()
		maps.Copy(planArgs, args)
	}
	if planArgs[frontend.ArgFlavor] == "" {
		return fmt.Errorf("--flavor (or flavor: in the spec) is required (valid: %s)", strings.Join(cat.Names(), ", "))
	}
	plats, err := parsePlatforms(f.platforms, planArgs[argArch])
	if err != nil {
		return err
	}
	// Check every target and platform before any work starts.
	var plans []*frontend.Plan
	for _, t := range f.targets {
		o, err := frontend.ParseOptions(t, planArgs)
		if err != nil {
			return err
		}
		for _, platform := range plats {
			p, err := frontend.NewPlan(cat, o, platform)
			if err != nil {
				return err
			}
			plans = append(plans, p)
		}
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	agents, err := findAgents(f.agents, filepath.Dir(self), plats)
	if err != nil {
		return err
	}
	contexts := map[string]string{}
	// The frontend looks for a kairos.yaml spec in the "dockerfile" local;
	// an empty one says there is none without a failed step in the output.
	specName := ""
	if f.spec != "" {
		specName = filepath.Base(f.spec)
		contexts["dockerfile"] = filepath.Dir(f.spec)
		contexts["context"] = filepath.Dir(f.spec)
	} else {
		noSpec, err := os.MkdirTemp("", "kairos-nospec-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(noSpec)
		contexts["dockerfile"] = noSpec
	}
	if f.context != "" {
		contexts["context"] = f.context
	}
	if slices.ContainsFunc(plans, func(p *frontend.Plan) bool { return p.Artifacts != nil }) {
		writer := f.writer
		if writer == "" {
			writer = filepath.Join(filepath.Dir(self), frontend.ToolsFile)
		}
		toolsDir, cleanup, err := fileContext(writer, frontend.ToolsFile, "--writer", "build it with CGO_ENABLED=0 go build ./cmd/kairos-frontend, or pass --writer")
		if err != nil {
			return err
		}
		defer cleanup()
		contexts[frontend.ContextTools] = toolsDir
	}
	if f.k3s != "" {
		k3sDir, cleanup, err := fileContext(f.k3s, "k3s", "--k3s", "pass the k3s release binary")
		if err != nil {
			return err
		}
		defer cleanup()
		contexts[frontend.ContextK3s] = k3sDir
	}
	if f.overlay != "" {
		if st, err := os.Stat(f.overlay); err != nil || !st.IsDir() {
			return fmt.Errorf("--overlay %s: want a directory (%v)", f.overlay, err)
		}
		contexts[frontend.ContextOverlay] = f.overlay
	}

	cache, err := cacheRoot(f.cacheDir)
	if err != nil {
		return err
	}
	c, err := buildkitd.Connect(ctx, buildkitd.Daemon{StateDir: filepath.Join(cache, "buildkit")})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := emulate(ctx, c, plats); err != nil {
		return err
	}
	bases := map[string]baseimage.Base{}
	for _, platform := range plats {
		resolver := baseimage.Resolver{CacheDir: filepath.Join(cache, "base"), Arch: platform.Architecture}
		if bases[platform.Architecture], err = resolver.Resolve(ctx, plans[0].Flavor, planArgs[frontend.ArgBaseImage]); err != nil {
			return err
		}
	}
	multiBase := bases[plats[0].Architecture]
	if len(plats) > 1 && multiBase.Layout != "" {
		var all []baseimage.Base
		for _, platform := range plats {
			all = append(all, bases[platform.Architecture])
		}
		if multiBase, err = baseimage.Index(filepath.Join(cache, "base"), all); err != nil {
			return err
		}
	}
	for i := 0; i < len(plans); i++ {
		p := plans[i]
		req := localbuild.Request{
			Plan: p, BuildArgs: args, Base: bases[p.Platform.Architecture], NoCache: f.noCache, SpecName: specName,
			OutputDir: f.output, Progress: f.progress,
		}
		built := []ocispec.Platform{p.Platform}
		what := p.Release.ArtifactName()
		// The image of several platforms is one index, built at once.
		if p.Target == frontend.TargetImage && len(plats) > 1 {
			req.Platforms, req.Base, built = plats, multiBase, plats
			what = p.Release.IndexArtifactName() + " (" + platformList(plats) + ")"
			i += len(plats) - 1
		}
		agentContexts, cleanup, err := agents.Contexts(built)
		if err != nil {
			return err
		}
		defer cleanup()
		req.Contexts = maps.Clone(contexts)
		maps.Copy(req.Contexts, agentContexts)
		logrus.Infof("building %s of %s", p.Target, what)
		if _, err := localbuild.Run(ctx, c, req); err != nil {
			return fmt.Errorf("target %s: %w", p.Target, err)
		}
	}
	return nil
}

// findAgents classifies the --agent binaries by architecture; without
// any, it takes kairos-agent next to this program and kairos-agent-<arch>
// beside it for every other architecture built. Every platform needs one.
func findAgents(given []string, dir string, plats []ocispec.Platform) (localbuild.Agents, error) {
	if len(given) == 0 {
		given = []string{filepath.Join(dir, "kairos-agent")}
		for _, p := range plats {
			if p.Architecture == runtime.GOARCH {
				continue
			}
			if c := filepath.Join(dir, "kairos-agent-"+p.Architecture); fileExists(c) {
				given = append(given, c)
			}
		}
	}
	agents, err := localbuild.ParseAgents(given...)
	if err != nil {
		return nil, fmt.Errorf("--agent: %w (build them with CGO_ENABLED=0 go build -o . ./cmd/kairos-agent ./cmd/kairos-p2p, or pass --agent)", err)
	}
	for _, p := range plats {
		if _, err := agents.For(p.Architecture); err != nil {
			return nil, err
		}
	}
	return agents, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// argArch is the Earthfile's ARCH (amd64, arm64 or both, comma-separated),
// the same as --platform.
const argArch = "ARCH"

// parsePlatforms reads --platform, else ARCH, else this machine's.
func parsePlatforms(flag []string, arch string) ([]ocispec.Platform, error) {
	var names []string
	switch {
	case len(flag) > 0 && arch != "":
		return nil, errors.New("give the platforms once: --platform or ARCH, not both")
	case len(flag) > 0:
		names = flag
	case arch != "":
		for _, a := range strings.Split(arch, ",") {
			names = append(names, "linux/"+strings.TrimSpace(a))
		}
	default:
		return []ocispec.Platform{platforms.Normalize(platforms.DefaultSpec())}, nil
	}
	var out []ocispec.Platform
	seen := map[string]bool{}
	for _, n := range names {
		p, err := platforms.Parse(strings.TrimSpace(n))
		if err != nil {
			return nil, fmt.Errorf("platform %q: %w (want linux/amd64 or linux/arm64)", n, err)
		}
		p = platforms.Normalize(p)
		if p.OS != "linux" {
			return nil, fmt.Errorf("platform %q: Kairos builds linux images only", n)
		}
		if seen[p.Architecture] {
			return nil, fmt.Errorf("platform %q is named twice", n)
		}
		seen[p.Architecture] = true
		out = append(out, p)
	}
	return out, nil
}

func platformList(ps []ocispec.Platform) string {
	var s []string
	for _, p := range ps {
		s = append(s, platforms.Format(p))
	}
	return strings.Join(s, ", ")
}

// emulate makes the builder able to run each platform's steps. A daemon
// whose workers list the platform (native, or started with emulation)
// runs it as it is; otherwise this machine's kernel is given QEMU through
// binfmt_misc, which the private daemon (or one on this machine) uses.
func emulate(ctx context.Context, c *client.Client, plats []ocispec.Platform) error {
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		return fmt.Errorf("listing the builder's platforms: %w", err)
	}
	var have []string
	for _, w := range ws {
		for _, p := range w.Platforms {
			have = append(have, platforms.Format(platforms.Normalize(p)))
		}
	}
	for _, p := range plats {
		if slices.ContainsFunc(ws, func(w *client.WorkerInfo) bool {
			return slices.ContainsFunc(w.Platforms, platforms.Only(p).Match)
		}) || p.Architecture == runtime.GOARCH {
			continue
		}
		res, err := binfmt.Ensure(p.Architecture)
		if err != nil {
			return fmt.Errorf("building for %s (the builder runs %s): %w", platforms.Format(p), strings.Join(have, ", "), err)
		}
		logrus.Infof("%s: build steps run under QEMU emulation (%s)", platforms.Format(p), res)
	}
	return nil
}

// fileContext is localbuild.FileContext with the flag that names the
// binary and how to get one.
func fileContext(bin, name, flag, hint string) (string, func(), error) {
	dir, cleanup, err := localbuild.FileContext(bin, name)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w (%s)", flag, err, hint)
	}
	return dir, cleanup, nil
}
