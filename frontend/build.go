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
	"time"

	"github.com/containerd/platforms"
	"github.com/kairos-io/kairos/flavors"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/frontend/subrequests/outline"
	"github.com/moby/buildkit/frontend/subrequests/targets"
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

	opts, err := ParseOptions(bc.Target, bc.BuildArgs)
	if err != nil {
		return nil, err
	}
	cat, err := flavors.Load()
	if err != nil {
		return nil, err
	}

	rb, err := bc.Build(ctx, func(ctx context.Context, platform *ocispecs.Platform, _ int) (client.Reference, *dockerspec.DockerOCIImage, *dockerspec.DockerOCIImage, error) {
		p := platforms.Normalize(platforms.DefaultSpec())
		if platform != nil {
			p = platforms.Normalize(*platform)
		}
		return buildPlatform(ctx, c, bc, cat, opts, p)
	})
	if err != nil {
		return nil, err
	}
	return rb.Finalize()
}

// buildPlatform builds one platform's image or artifacts.
func buildPlatform(ctx context.Context, c client.Client, bc *dockerui.Client, cat *flavors.Catalog, opts Options, platform ocispecs.Platform) (client.Reference, *dockerspec.DockerOCIImage, *dockerspec.DockerOCIImage, error) {
	plan, err := NewPlan(cat, opts, platform)
	if err != nil {
		return nil, nil, nil, err
	}
	in := Inputs{Epoch: bc.Epoch}
	if in.Base, err = loadBase(ctx, bc, plan); err != nil {
		return nil, nil, nil, err
	}
	agent, err := loadContext(ctx, bc, ContextAgent, plan.Platform)
	if err != nil {
		return nil, nil, nil, err
	}
	if agent == nil {
		return nil, nil, nil, fmt.Errorf("no kairos-agent binary: pass a directory holding %q as the %q context (context:%s=local:<name>, or --build-context %s=<dir>)",
			agentFile, ContextAgent, ContextAgent, ContextAgent)
	}
	in.Agent = *agent
	if in.Overlay, err = loadContext(ctx, bc, ContextOverlay, plan.Platform); err != nil {
		return nil, nil, nil, err
	}
	if plan.K3s != nil {
		if in.K3s, err = loadK3s(ctx, c, bc, plan); err != nil {
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
	ref, err := solve(ctx, c, out, plan.Platform)
	if err != nil {
		return nil, nil, nil, err
	}
	img := ImageConfig(plan, bc.Epoch)
	return ref, &img, nil, nil
}

func solve(ctx context.Context, c client.Client, st llb.State, platform ocispecs.Platform) (client.Reference, error) {
	def, err := st.Marshal(ctx, llb.Platform(platform))
	if err != nil {
		return nil, fmt.Errorf("marshalling LLB: %w", err)
	}
	res, err := c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	return res.SingleRef()
}

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
func loadBase(ctx context.Context, bc *dockerui.Client, p *Plan) (llb.State, error) {
	st, err := loadContext(ctx, bc, ContextBase, p.Platform)
	if err != nil {
		return llb.State{}, err
	}
	if st != nil {
		return *st, nil
	}
	return llb.Image(p.BaseImage, llb.Platform(p.Platform), llb.WithCustomName("[base] "+p.BaseImage)), nil
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
// OS, not an application), a PATH, and the upstream labels.
func ImageConfig(p *Plan, epoch *time.Time) dockerspec.DockerOCIImage {
	img := dockerspec.DockerOCIImage{}
	img.Platform = p.Platform
	img.Config.Env = []string{"PATH=" + defaultPATH}
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
