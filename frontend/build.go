// Package frontend is the Kairos BuildKit frontend: it turns build options and
// the flavor data into LLB and solves it. The same Build function runs
// in-process (the kairos CLI, through the BuildKit client) and as a gateway
// image (cmd/kairos-frontend); it depends on nothing but the gateway client.
//
// Layers, as in BuildKit's Dockerfile frontend: options.go parses what the
// caller asked, plan.go checks it against the flavor data into a pure Plan,
// convert.go turns the plan into LLB, and this file is the glue.
package frontend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/kairos-io/kairos/flavors"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/subrequests/outline"
	"github.com/moby/buildkit/frontend/subrequests/targets"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Named contexts the frontend understands (context:<name>=... options,
// --build-context in buildx, --oci-layout/--local in buildctl).
const (
	ContextBase    = "base"
	ContextAgent   = "agent"
	ContextK3s     = "k3s"
	ContextOverlay = "overlay"
	// ContextTools is a directory holding a static kairos-frontend, the
	// artifact writer; the gateway image itself serves when it is absent.
	ContextTools = "tools"
)

// Build is the frontend entry point.
func Build(ctx context.Context, c client.Client) (*client.Result, error) {
	bc, err := dockerui.NewClient(c)
	if err != nil {
		return nil, fmt.Errorf("reading frontend options: %w", err)
	}
	if res, ok, err := bc.HandleSubrequest(ctx, dockerui.RequestHandler{
		ListTargets: func(context.Context) (*targets.List, error) { return targetList(), nil },
		Outline:     func(context.Context) (*outline.Outline, error) { return targetOutline(bc.Target) },
	}); err != nil || ok {
		return res, err
	}

	spec, specSource, err := readSpec(ctx, c, bc)
	if err != nil {
		return nil, withSpecSource(err, specSource)
	}
	res, err := buildSpec(ctx, c, bc, spec)
	return res, withSpecSource(err, specSource)
}

// buildSpec builds what the spec and the build args ask for. Errors about
// the spec are *SpecError values somewhere in the returned chain; Build
// gives them their source location.
func buildSpec(ctx context.Context, c client.Client, bc *dockerui.Client, spec *Spec) (*client.Result, error) {
	opts, err := specOptions(ctx, c, bc, spec)
	if err != nil {
		return nil, err
	}
	cat, err := flavors.Load()
	if err != nil {
		return nil, err
	}
	if opts.Flavor == "" {
		f, err := detectFlavor(ctx, c, bc, cat, opts, spec)
		if err != nil {
			return nil, err
		}
		opts.Flavor, opts.FlavorRelease = f.Name, f.Release
	}
	if _, err := cat.Lookup(opts.Flavor, opts.FlavorRelease); err != nil {
		return nil, blame(spec, bc.BuildArgs, ArgFlavor, err)
	}

	rb, err := bc.Build(ctx, func(ctx context.Context, platform *ocispecs.Platform, _ int) (client.Reference, *dockerspec.DockerOCIImage, *dockerspec.DockerOCIImage, error) {
		p := platforms.Normalize(platforms.DefaultSpec())
		if platform != nil {
			p = platforms.Normalize(*platform)
		}
		return buildPlatform(ctx, c, bc, cat, spec, opts, p)
	})
	if err != nil {
		return nil, err
	}
	return rb.Finalize()
}

// specOptions merges the spec file and the build args (args win) into
// options, reporting a bad value at its line in the spec when it came from
// there, and reads the spec's cloud_config file from the build context.
func specOptions(ctx context.Context, c client.Client, bc *dockerui.Client, spec *Spec) (Options, error) {
	args := spec.Args()
	maps.Copy(args, bc.BuildArgs)
	opts, err := ParseOptions(bc.Target, args)
	if err != nil {
		var ae *ArgError
		if errors.As(err, &ae) {
			return opts, blame(spec, bc.BuildArgs, ae.Arg, err)
		}
		return opts, err
	}
	if spec == nil {
		return opts, nil
	}
	opts.AddPackages = spec.Packages.Add
	opts.RemovePackages = spec.Packages.Remove
	opts.SquashfsCompression = spec.Artifacts.Squashfs.Compression
	opts.ISOName = spec.Artifacts.ISO.Name
	opts.DiskSize = spec.Artifacts.Disk.Size
	opts.CloudConfig = spec.CloudConfig.Inline
	if p := spec.CloudConfig.Path; p != "" {
		data, err := readContextFile(ctx, c, bc, p)
		if err != nil {
			return opts, spec.Errorf("cloud_config", "reading %s from the build context: %w", p, err)
		}
		opts.CloudConfig = data
	}
	return opts, nil
}

// blame attributes an error about a build arg to the spec line that set it,
// unless the caller passed the arg explicitly (the error then names the arg).
func blame(spec *Spec, userArgs map[string]string, arg string, err error) error {
	if _, user := userArgs[arg]; user || spec == nil || spec.ArgKey(arg) == "" {
		return err
	}
	key := spec.ArgKey(arg)
	var ae *ArgError
	if errors.As(err, &ae) {
		return spec.Errorf(key, "%q: %s", ae.Value, ae.Msg)
	}
	return spec.Errorf(key, "%w", err)
}

func specName(spec *Spec) string {
	if spec == nil {
		return DefaultSpecName
	}
	return spec.File
}

// specLanguage is the spec's language in its source map, a GitHub linguist
// name as llb.SourceMap asks (clients may use it to highlight the file).
const specLanguage = "YAML"

// readSpec reads the spec file (the "filename" option, default
// kairos.yaml) from the "dockerfile" local, as buildx -f and buildctl
// --local dockerfile= provide it. Without an explicit filename a missing
// file means no spec: everything then comes from build args.
//
// It also returns the spec's source map whenever the file was read, even
// when it does not parse, so that withSpecSource can show the offending
// lines; it is nil when there is no spec file.
func readSpec(ctx context.Context, c client.Client, bc *dockerui.Client) (*Spec, *llb.SourceMap, error) {
	opts := c.BuildOpts().Opts
	name, explicit := opts[keyFilename]
	if !explicit {
		name = DefaultSpecName
	}
	localName := "dockerfile"
	if v := opts["dockerfilekey"]; v != "" {
		localName = v
	}
	sessionID := c.BuildOpts().SessionID
	if v := opts["local-sessionid:"+localName]; v != "" {
		sessionID = v
	}
	src := llb.Local(localName,
		llb.FollowPaths([]string{name}),
		llb.SessionID(sessionID),
		llb.SharedKeyHint(localName),
		llb.WithCustomName("[internal] load build spec "+name),
	)
	// The definition is kept for the source map: BuildKit clients receive
	// it with the error (buildx history and debugger use it to name the
	// step that loaded the file).
	def, err := marshal(ctx, src, platforms.Normalize(platforms.DefaultSpec()))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the build spec %s: %w", name, err)
	}
	ref, err := solveDef(ctx, c, def)
	if err == nil {
		var data []byte
		data, err = ref.ReadFile(ctx, client.ReadRequest{Filename: name})
		if err == nil {
			// The source map is named as the spec's errors name the file
			// (SpecError.File), so withSpecSource can tell they match.
			sm := llb.NewSourceMap(&src, path.Base(name), specLanguage, data)
			sm.Definition = def
			spec, err := ParseSpec(sm.Filename, data)
			return spec, sm, err
		}
	}
	if !explicit {
		return nil, nil, nil
	}
	return nil, nil, fmt.Errorf("reading the build spec %s: %w", name, err)
}

// withSpecSource attaches the spec file and the place a *SpecError in err
// points at as a BuildKit source location, so buildctl and buildx print
// the offending lines of the spec under the error, as they do for a
// Dockerfile. The message is unchanged: in-process builds (kairos build)
// print err as before, "kairos.yaml:LINE:COL: key: ...". Errors that are
// not about a line of this spec file are returned as they are.
func withSpecSource(err error, sm *llb.SourceMap) error {
	var se *SpecError
	if err == nil || sm == nil || !errors.As(err, &se) || se.Line <= 0 || se.File != sm.Filename {
		return err
	}
	// A point range: the parser knows where a value starts, not where it
	// ends. Line and Character are 1-based, as buildx's own HCL (bake)
	// source locations are.
	at := &pb.Position{Line: int32(se.Line), Character: int32(se.Column)}
	src := &errdefs.Source{
		Info: &pb.SourceInfo{
			Filename: sm.Filename,
			Data:     sm.Data,
			Language: sm.Language,
		},
		Ranges: []*pb.Range{{Start: at, End: at.CloneVT()}},
	}
	if sm.Definition != nil {
		src.Info.Definition = sm.Definition.ToPB()
	}
	return errdefs.WithSource(err, src)
}

// readContextFile reads one file of the main build context.
func readContextFile(ctx context.Context, c client.Client, bc *dockerui.Client, name string) ([]byte, error) {
	st, err := bc.MainContext(ctx, llb.FollowPaths([]string{name}))
	if err != nil {
		return nil, err
	}
	ref, err := solve(ctx, c, *st, platforms.Normalize(platforms.DefaultSpec()))
	if err != nil {
		return nil, err
	}
	return ref.ReadFile(ctx, client.ReadRequest{Filename: name})
}

// keyFilename is the frontend option naming the spec file (buildx -f).
const keyFilename = "filename"

// buildPlatform builds one platform's image or artifacts.
func buildPlatform(ctx context.Context, c client.Client, bc *dockerui.Client, cat *flavors.Catalog, spec *Spec, opts Options, platform ocispecs.Platform) (client.Reference, *dockerspec.DockerOCIImage, *dockerspec.DockerOCIImage, error) {
	plan, err := NewPlan(cat, opts, platform)
	if err != nil {
		return nil, nil, nil, err
	}
	in := Inputs{Epoch: bc.Epoch}
	var baseImg *dockerspec.DockerOCIImage
	if in.Base, baseImg, err = loadBase(ctx, bc, plan); err != nil {
		return nil, nil, nil, err
	}
	if err := loadAgent(ctx, c, bc, plan, &in); err != nil {
		return nil, nil, nil, err
	}
	if in.Overlay, err = loadContext(ctx, bc, ContextOverlay, plan.Platform); err != nil {
		return nil, nil, nil, err
	}
	if in.Overlay == nil && spec != nil && spec.Overlay != "" {
		if in.Overlay, err = bc.MainContext(ctx, llb.FollowPaths([]string{spec.Overlay})); err != nil {
			return nil, nil, nil, spec.Errorf("overlay", "loading %s from the build context: %w", spec.Overlay, err)
		}
		in.OverlayDir = spec.Overlay
	}
	if plan.K3s != nil {
		if in.K3s, err = loadK3s(ctx, c, bc, plan); err != nil {
			return nil, nil, nil, err
		}
	}
	if plan.Artifacts != nil {
		if err := loadTools(ctx, c, bc, &in); err != nil {
			return nil, nil, nil, err
		}
	}

	g, err := Convert(plan, in)
	if err != nil {
		return nil, nil, nil, err
	}
	out := g.Image
	if plan.Artifacts != nil {
		out = g.Artifacts
	}
	var marshalOpts []llb.ConstraintsOpt
	if bc.IsNoCache("") {
		// --no-cache: every step runs again (package caches stay, they are
		// cache mounts), which is how reproducibility is checked.
		marshalOpts = append(marshalOpts, llb.IgnoreCache)
	}
	def, err := marshal(ctx, out, plan.Platform, marshalOpts...)
	if err != nil {
		return nil, nil, nil, err
	}
	// The build's steps may come from the caches the caller names
	// (--cache-from, buildctl --import-cache): a fresh builder reuses the
	// work others exported to a registry.
	res, err := c.Solve(ctx, client.SolveRequest{Definition: def.ToPB(), CacheImports: bc.CacheImports})
	if err != nil {
		return nil, nil, nil, err
	}
	ref, err := res.SingleRef()
	if err != nil {
		return nil, nil, nil, err
	}
	img := ImageConfig(plan, bc.Epoch, baseImg)
	// The base's config tells the exporter which layers are the base's:
	// with rewrite-timestamp it leaves those as they are (they are fixed
	// by digest already) and rewrites only the layers this build made.
	return ref, &img, baseImg, nil
}

func solve(ctx context.Context, c client.Client, st llb.State, platform ocispecs.Platform, opts ...llb.ConstraintsOpt) (client.Reference, error) {
	def, err := marshal(ctx, st, platform, opts...)
	if err != nil {
		return nil, err
	}
	return solveDef(ctx, c, def)
}

func marshal(ctx context.Context, st llb.State, platform ocispecs.Platform, opts ...llb.ConstraintsOpt) (*llb.Definition, error) {
	def, err := st.Marshal(ctx, append([]llb.ConstraintsOpt{llb.Platform(platform)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("marshalling LLB: %w", err)
	}
	return def, nil
}

func solveDef(ctx context.Context, c client.Client, def *llb.Definition) (client.Reference, error) {
	res, err := c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	return res.SingleRef()
}

// loadAgent picks the kairos-agent: the "agent" named context when given,
// else the agent of the target platform that the frontend's own gateway
// image carries (the "source" option BuildKit passes to gateway frontends).
func loadAgent(ctx context.Context, c client.Client, bc *dockerui.Client, p *Plan, in *Inputs) error {
	agent, err := loadContext(ctx, bc, ContextAgent, p.Platform)
	if err != nil {
		return err
	}
	if agent != nil {
		in.Agent = *agent
		return nil
	}
	source := c.BuildOpts().Opts[keySource]
	if source == "" {
		return fmt.Errorf("no kairos-agent binary: pass a directory holding %q and %q as the %q context (context:%s=local:<name>, or --build-context %s=<dir>)",
			AgentFile, MeshFile, ContextAgent, ContextAgent, ContextAgent)
	}
	// The frontend image is single-platform (the builder's); the agents of
	// every target platform are files in it.
	in.Agent = llb.Image(source, llb.Platform(platforms.Normalize(platforms.DefaultSpec())),
		llb.WithCustomName("[agent] from frontend image "+source))
	in.AgentDir = AgentsDir + "/" + p.Platform.OS + "_" + p.Platform.Architecture
	return nil
}

// loadTools picks the artifact writer: the "tools" named context when given
// (in-process builds pass the kairos-frontend next to the kairos CLI), else
// the frontend's own gateway image. Either way it runs on the builder's
// platform, whatever the target platform: writing artifacts is file
// assembly and needs no emulation.
func loadTools(ctx context.Context, c client.Client, bc *dockerui.Client, in *Inputs) error {
	builder := platforms.Normalize(platforms.DefaultSpec())
	tools, err := loadContext(ctx, bc, ContextTools, builder)
	if err != nil {
		return err
	}
	if tools != nil {
		st := tools.Platform(builder)
		in.Tools, in.ToolsPath = &st, ToolsFile
		return nil
	}
	source := c.BuildOpts().Opts[keySource]
	if source == "" {
		return fmt.Errorf("no artifact writer: pass a directory holding a static %q as the %q context (context:%s=local:<name>, or --build-context %s=<dir>)",
			ToolsFile, ContextTools, ContextTools, ContextTools)
	}
	st := llb.Image(source, llb.Platform(builder), llb.WithCustomName("[artifacts] writer from frontend image "+source))
	in.Tools, in.ToolsPath = &st, ToolsFile
	return nil
}

// ToolsFile is the artifact writer, at the root of the tools context and of
// the frontend image.
const ToolsFile = "kairos-frontend"

// keySource is the gateway option naming the frontend image.
const keySource = "source"

// AgentsDir holds /agents/<os>_<arch>/kairos-agent (and kairos-p2p) in the
// frontend image.
const AgentsDir = "agents"

// loadK3s returns the directory holding the k3s binary: the "k3s" named
// context when given (air-gapped builds), else the upstream release
// download checked against the release's sha256 file.
func loadK3s(ctx context.Context, c client.Client, bc *dockerui.Client, p *Plan) (*llb.State, error) {
	st, err := loadContext(ctx, bc, ContextK3s, p.Platform)
	if err != nil || st != nil {
		return st, err
	}
	howto := fmt.Sprintf("for an air-gapped build pass a directory holding the %s binary as the %q context (buildx: --build-context %s=<dir>; buildctl: --local k3s=<dir> --opt context:%s=local:k3s; kairos build: --k3s <file>)",
		k3sFile, ContextK3s, ContextK3s, ContextK3s)
	ref, err := solve(ctx, c, K3sSums(p.K3s), p.Platform)
	if err != nil {
		return nil, fmt.Errorf("k3s %s: cannot download %s: %w; %s", p.K3s.Version, p.K3s.SumsURL, err, howto)
	}
	data, err := ref.ReadFile(ctx, client.ReadRequest{Filename: k3sSumsFile})
	if err != nil {
		return nil, fmt.Errorf("k3s %s: reading %s: %w", p.K3s.Version, p.K3s.SumsURL, err)
	}
	dgst, err := ParseK3sSums(p.K3s, data)
	if err != nil {
		return nil, err
	}
	dl := K3sDownload(p.K3s, dgst)
	return &dl, nil
}

// loadBase returns the distro base: the "base" named context when given,
// else the flavor's (or BASE_IMAGE's) registry image.
func loadBase(ctx context.Context, bc *dockerui.Client, p *Plan) (llb.State, *dockerspec.DockerOCIImage, error) {
	nc, err := bc.NamedContext(ContextBase, dockerui.ContextOpt{Platform: &p.Platform})
	if err != nil {
		return llb.State{}, nil, fmt.Errorf("context %q: %w", ContextBase, err)
	}
	if nc != nil {
		st, img, err := nc.Load(ctx)
		if err != nil {
			return llb.State{}, nil, fmt.Errorf("loading context %q: %w", ContextBase, err)
		}
		return *st, img, nil
	}
	st, err := baseState(ctx, bc, p.BaseImage, p.Platform)
	if err != nil {
		return llb.State{}, nil, err
	}
	return *st, nil, nil
}

// baseState is the "base" named context, else the image ref (nil when
// there is neither).
func baseState(ctx context.Context, bc *dockerui.Client, ref string, platform ocispecs.Platform) (*llb.State, error) {
	st, err := loadContext(ctx, bc, ContextBase, platform)
	if err != nil || st != nil {
		return st, err
	}
	if ref == "" {
		return nil, nil
	}
	img := llb.Image(ref, llb.Platform(platform), llb.WithCustomName("[base] "+ref))
	return &img, nil
}

// detectFlavor reads the base image's os-release to pick the flavor when
// neither the build args nor the spec name one.
func detectFlavor(ctx context.Context, c client.Client, bc *dockerui.Client, cat *flavors.Catalog, o Options, spec *Spec) (*flavors.Flavor, error) {
	platform := platforms.Normalize(platforms.DefaultSpec())
	if len(bc.TargetPlatforms) > 0 {
		platform = platforms.Normalize(bc.TargetPlatforms[0])
	}
	st, err := baseState(ctx, bc, o.BaseImage, platform)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("no flavor given: set %s, or flavor: in %s, or give a base image (%s, base: in the spec, or a %q context) to detect it from (valid flavors: %s)",
			ArgFlavor, specName(spec), ArgBaseImage, ContextBase, strings.Join(cat.Names(), ", "))
	}
	ref, err := solve(ctx, c, *st, platform)
	if err != nil {
		return nil, fmt.Errorf("reading the base image to detect its flavor: %w", err)
	}
	var data []byte
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if data, err = ref.ReadFile(ctx, client.ReadRequest{Filename: p}); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("the base image has no /etc/os-release to detect its flavor from; set %s: %w", ArgFlavor, err)
	}
	f, err := cat.Detect(data)
	if err != nil {
		return nil, fmt.Errorf("detecting the flavor of the base image: %w (or set %s)", err, ArgFlavor)
	}
	return f, nil
}

func loadContext(ctx context.Context, bc *dockerui.Client, name string, platform ocispecs.Platform) (*llb.State, error) {
	nc, err := bc.NamedContext(name, dockerui.ContextOpt{Platform: &platform})
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", name, err)
	}
	if nc == nil {
		return nil, nil
	}
	st, _, err := nc.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading context %q: %w", name, err)
	}
	return st, nil
}

// ImageConfig is the OCI config of the Kairos image: no entrypoint (it is an
// OS, not an application), a shell as its command, a PATH, and the
// upstream labels.
func ImageConfig(p *Plan, epoch *time.Time, base *dockerspec.DockerOCIImage) dockerspec.DockerOCIImage {
	img := dockerspec.DockerOCIImage{}
	img.Platform = p.Platform
	img.Config.Env = []string{"PATH=" + defaultPATH}
	// `docker run -ti <image>` opens a shell to look around the OS: the
	// base's command, else /bin/sh (every flavor has one).
	img.Config.Cmd = []string{"/bin/sh"}
	if base != nil && len(base.Config.Cmd) > 0 && len(base.Config.Entrypoint) == 0 {
		img.Config.Cmd = slices.Clone(base.Config.Cmd)
	}
	img.Config.Labels = p.Labels()
	img.Created = epoch
	img.RootFS.Type = "layers"
	return img
}

// targetList answers the frontend.targets subrequest (buildx --call targets).
func targetList() *targets.List {
	l := &targets.List{}
	for _, t := range Targets {
		l.Targets = append(l.Targets, targets.Target{
			Name:        string(t.Name),
			Default:     t.Name == TargetImage,
			Description: t.Description,
		})
	}
	return l
}

// targetOutline answers the frontend.outline subrequest (buildx --call
// outline): the target and the build args it reads.
func targetOutline(target string) (*outline.Outline, error) {
	if target == "" {
		target = string(TargetImage)
	}
	var info *TargetInfo
	for i := range Targets {
		if string(Targets[i].Name) == target {
			info = &Targets[i]
		}
	}
	if info == nil {
		return nil, errors.New(unknownTargetError(Target(target)))
	}
	o := &outline.Outline{Name: string(info.Name), Description: info.Description}
	for _, a := range Args {
		o.Args = append(o.Args, outline.Arg{Name: a.Name, Description: a.Description, Value: a.Default})
	}
	return o, nil
}
