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
	"encoding/json"
	"fmt"
	"time"

	"github.com/containerd/platforms"
	"github.com/kairos-io/kairos/flavors"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Named contexts the frontend understands (context:<name>=... options,
// --build-context in buildx).
const (
	ContextBase  = "base"
	ContextAgent = "agent"
)

// Build is the frontend entry point.
func Build(ctx context.Context, c client.Client) (*client.Result, error) {
	bc, err := dockerui.NewClient(c)
	if err != nil {
		return nil, fmt.Errorf("reading frontend options: %w", err)
	}
	opts, err := ParseOptions(bc.Target, bc.BuildArgs)
	if err != nil {
		return nil, err
	}
	cat, err := flavors.Load()
	if err != nil {
		return nil, err
	}
	platform := platforms.Normalize(platforms.DefaultSpec())
	if len(bc.TargetPlatforms) > 0 {
		platform = bc.TargetPlatforms[0]
	}
	plan, err := NewPlan(cat, opts, platform)
	if err != nil {
		return nil, err
	}

	base, err := loadBase(ctx, bc, plan)
	if err != nil {
		return nil, err
	}
	agent, err := loadContext(ctx, bc, ContextAgent, plan.Platform)
	if err != nil {
		return nil, err
	}
	if agent == nil {
		return nil, fmt.Errorf("no kairos-agent binary: pass a directory holding %q as the %q context (context:%s=local:<name>, or --build-context %s=<dir>)",
			agentFile, ContextAgent, ContextAgent, ContextAgent)
	}

	g, err := Convert(plan, Inputs{Base: base, Agent: *agent, Epoch: bc.Epoch})
	if err != nil {
		return nil, err
	}
	out := g.Image
	if plan.Target != TargetImage {
		out = g.Artifacts
	}
	def, err := out.Marshal(ctx, llb.Platform(plan.Platform))
	if err != nil {
		return nil, fmt.Errorf("marshalling LLB: %w", err)
	}
	res, err := c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	ref, err := res.SingleRef()
	if err != nil {
		return nil, err
	}
	result := client.NewResult()
	result.SetRef(ref)
	if plan.Target == TargetImage {
		cfg, err := json.Marshal(ImageConfig(plan, bc.Epoch))
		if err != nil {
			return nil, err
		}
		result.AddMeta(exptypes.ExporterImageConfigKey, cfg)
	}
	return result, nil
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
