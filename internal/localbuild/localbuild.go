// Package localbuild runs the Kairos frontend in-process against a BuildKit
// daemon and exports its results as files: the image as an OCI archive, the
// artifacts into a directory. It is the engine behind `kairos build`.
package localbuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/platforms"
	"github.com/docker/cli/cli/config"
	"github.com/kairos-io/kairos/frontend"
	"github.com/kairos-io/kairos/internal/baseimage"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// Request is one build.
type Request struct {
	// Plan is the build's; its Platform is the one built unless
	// Platforms names several.
	Plan *frontend.Plan
	// Platforms, for the image target, makes one multi-platform image
	// index of these platforms (its archive named without an arch); Base
	// must then hold every platform (baseimage.Index).
	Platforms []ocispec.Platform
	BuildArgs map[string]string
	Base      baseimage.Base
	// Contexts maps named contexts of the frontend (agent, k3s, overlay),
	// and the "dockerfile" and "context" locals, to local directories.
	Contexts map[string]string
	// OutputDir receives the results.
	OutputDir string
	// Progress is a progressui mode: auto, plain, tty, quiet, rawjson.
	Progress string
	// NoCache runs every step again (reproducibility checks).
	NoCache bool
	// SpecName is the spec file in the "dockerfile" context ("" = none).
	SpecName string
	// ProgressOut receives the progress (default: standard error).
	ProgressOut io.Writer

	// Push, for the image target, makes the builder push the image to
	// this reference itself instead of sending an OCI archive back.
	Push string
	// Insecure lets the builder push over plain HTTP (its own
	// configuration must allow that registry too).
	Insecure bool
	// Annotations go on the pushed image's manifest and index.
	Annotations map[string]string
	// Provenance attaches BuildKit's SLSA provenance (mode=max) to the
	// pushed image.
	Provenance bool
	// CacheImports and CacheExports are BuildKit's --cache-from and
	// --cache-to (type=registry,ref=...,mode=max).
	CacheImports, CacheExports []client.CacheOptionsEntry
}

const baseStoreID = "kairos-base"

// Result says what a build wrote.
type Result struct {
	Files []string
	// Digest is the pushed image's (its index, with attestations).
	Digest string
	// Steps is how many build steps the solve had, Cached how many of
	// them came from a cache, Ran the names of the others.
	Steps, Cached int
	Ran           []string
}

// Run solves the request's target and writes its outputs.
func Run(ctx context.Context, c *client.Client, req Request) (*Result, error) {
	if err := os.MkdirAll(req.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output directory: %w", err)
	}
	plats := []ocispec.Platform{req.Plan.Platform}
	if len(req.Platforms) > 0 {
		if req.Plan.Target != frontend.TargetImage && len(req.Platforms) > 1 {
			return nil, fmt.Errorf("target %s is built one platform at a time (asked for %d)", req.Plan.Target, len(req.Platforms))
		}
		plats = req.Platforms
	}
	var pnames []string
	for _, p := range plats {
		pnames = append(pnames, platforms.Format(platforms.Normalize(p)))
	}
	attrs := map[string]string{
		"target": string(req.Plan.Target),
		// The frontend builds these platforms (dockerui's option, as
		// buildx --platform sends it).
		"platform": strings.Join(pnames, ","),
	}
	for k, v := range req.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	if req.NoCache {
		attrs["no-cache"] = ""
	}
	if req.SpecName != "" {
		attrs["filename"] = req.SpecName
	}
	if req.Provenance {
		attrs["attest:provenance"] = "mode=max"
	}
	opt := client.SolveOpt{
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{},
		CacheImports:  req.CacheImports,
		CacheExports:  req.CacheExports,
		// The daemon pulls bases and pushes images and caches with the
		// caller's registry credentials (~/.docker/config.json, as
		// buildctl and buildx), asked for over the session.
		Session: []session.Attachable{authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
			ConfigFile: config.LoadDefaultConfigFile(io.Discard),
		})},
	}
	for name, dir := range req.Contexts {
		fsys, err := fsutil.NewFS(dir)
		if err != nil {
			return nil, fmt.Errorf("%s context %s: %w", name, dir, err)
		}
		local := localName(name)
		opt.LocalMounts[local] = fsys
		// "dockerfile" and "context" are the frontend's own locals (spec
		// file, build context), not named contexts.
		if name != "dockerfile" && name != "context" {
			attrs["context:"+name] = "local:" + local
		}
	}
	switch {
	case req.Base.Layout != "":
		store, err := contentlocal.NewStore(req.Base.Layout)
		if err != nil {
			return nil, fmt.Errorf("opening base layout %s: %w", req.Base.Layout, err)
		}
		opt.OCIStores = map[string]content.Store{baseStoreID: store}
		attrs["context:"+frontend.ContextBase] = "oci-layout://" + baseStoreID + "@" + req.Base.Digest.String()
	case req.Base.Ref != "":
		attrs["context:"+frontend.ContextBase] = "docker-image://" + req.Base.Ref
	}

	name := req.Plan.Release.ArtifactName()
	if len(plats) > 1 {
		name = req.Plan.Release.IndexArtifactName()
	}
	var final, partial string
	var pr *io.PipeReader
	var pw *io.PipeWriter
	switch {
	case req.Plan.Target == frontend.TargetImage && req.Push != "":
		ex := exportAttrs(req)
		ex["name"] = req.Push
		ex["push"] = "true"
		if req.Insecure {
			ex["registry.insecure"] = "true"
		}
		for k, v := range req.Annotations {
			ex["annotation."+k] = v
			ex["annotation-index."+k] = v
		}
		opt.Exports = []client.ExportEntry{{Type: client.ExporterImage, Attrs: ex}}
	case req.Plan.Target == frontend.TargetImage:
		final = filepath.Join(req.OutputDir, name+".oci.tar")
		partial = final + ".partial"
		opt.Exports = []client.ExportEntry{{
			Type:  client.ExporterOCI,
			Attrs: exportAttrs(req),
			Output: func(map[string]string) (io.WriteCloser, error) {
				return os.Create(partial)
			},
		}}
	default:
		// The tar exporter, written here with holes for runs of zeros
		// (extract): the local exporter would write a sparse disk image
		// densely, and then it would have to be punched again.
		pr, pw = io.Pipe()
		opt.Exports = []client.ExportEntry{{
			Type:   client.ExporterTar,
			Output: func(map[string]string) (io.WriteCloser, error) { return pw, nil },
		}}
	}

	mode := req.Progress
	if mode == "" {
		mode = string(progressui.AutoMode)
	}
	pout := req.ProgressOut
	if pout == nil {
		pout = os.Stderr
	}
	display, err := progressui.NewDisplay(pout, progressui.DisplayMode(mode))
	if err != nil {
		return nil, err
	}
	ch := make(chan *client.SolveStatus)
	shown := make(chan *client.SolveStatus)
	eg, ectx := errgroup.WithContext(ctx)
	var resp *client.SolveResponse
	eg.Go(func() error {
		var err error
		resp, err = c.Build(ectx, opt, "kairos", frontend.Build, ch)
		if pw != nil {
			// A build that failed before its export leaves extract
			// waiting; after a complete export this changes nothing.
			pw.CloseWithError(fmt.Errorf("the build ended before exporting its artifacts: %v", err))
		}
		return err
	})
	var extracted []string
	if pr != nil {
		eg.Go(func() error {
			var err error
			extracted, err = receive(pr, req.OutputDir)
			return err
		})
	}
	var steps stepCount
	eg.Go(func() error {
		defer close(shown)
		for s := range ch {
			steps.add(s)
			shown <- s
		}
		return nil
	})
	eg.Go(func() error {
		_, err := display.UpdateFrom(context.WithoutCancel(ectx), shown)
		return err
	})
	if err := eg.Wait(); err != nil {
		if partial != "" {
			os.Remove(partial)
		}
		return nil, err
	}

	res := &Result{}
	res.Steps, res.Cached, res.Ran = steps.result()
	if resp != nil {
		res.Digest = resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	}
	switch {
	case req.Push != "":
		if res.Digest == "" {
			return nil, fmt.Errorf("the builder pushed %s but reported no digest", req.Push)
		}
	case partial != "":
		if err := os.Rename(partial, final); err != nil {
			return nil, err
		}
		if err := WriteChecksum(final); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, final, final+".sha256")
	default:
		res.Files = extracted
	}
	for _, f := range res.Files {
		logrus.Infof("wrote %s", f)
	}
	return res, nil
}

// exportAttrs names the image and, with SOURCE_DATE_EPOCH, clamps every
// file time in the layers to it so that rebuilds give the same digest.
func exportAttrs(req Request) map[string]string {
	attrs := map[string]string{"name": imageName(req.Plan, len(req.Platforms) > 1)}
	if _, ok := req.BuildArgs["SOURCE_DATE_EPOCH"]; ok {
		attrs["rewrite-timestamp"] = "true"
	}
	return attrs
}

// imageName is the reference recorded in the OCI archive, so skopeo and
// registries see a name and tag (without the arch for an index of several).
func imageName(p *frontend.Plan, multi bool) string {
	if multi {
		return fmt.Sprintf("kairos/%s:%s", p.Release.Flavor, p.Release.IndexTag())
	}
	return fmt.Sprintf("kairos/%s:%s", p.Release.Flavor, p.Release.ImageTag())
}

// WriteChecksum writes "<file>.sha256" in sha256sum's format.
func WriteChecksum(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hashing %s: %w", path, err)
	}
	line := hex.EncodeToString(h.Sum(nil)) + "  " + filepath.Base(path) + "\n"
	return os.WriteFile(path+".sha256", []byte(line), 0o644)
}

// stepCount follows the vertices of a solve: which completed, and which
// of those came from a cache, local (BuildKit marks them cached) or
// imported from a registry (BuildKit shows them completing with only the
// download of their layers: no output of their own).
type stepCount struct {
	done           map[string]*client.Vertex
	logged, pulled map[string]bool
	otherStatus    map[string]bool
}

func (c *stepCount) add(s *client.SolveStatus) {
	if c.done == nil {
		c.done, c.logged, c.pulled, c.otherStatus = map[string]*client.Vertex{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	}
	for _, v := range s.Vertexes {
		if v.Completed != nil {
			c.done[v.Digest.String()] = v
		}
	}
	for _, l := range s.Logs {
		c.logged[l.Vertex.String()] = true
	}
	for _, st := range s.Statuses {
		if strings.HasPrefix(st.ID, "sha256:") || strings.HasPrefix(st.ID, "extracting sha256:") {
			c.pulled[st.Vertex.String()] = true
		} else {
			c.otherStatus[st.Vertex.String()] = true
		}
	}
}

func (c *stepCount) result() (steps, cached int, ran []string) {
	for d, v := range c.done {
		if !isStep(v.Name) {
			continue
		}
		steps++
		if v.Cached || c.pulled[d] && !c.logged[d] && !c.otherStatus[d] {
			cached++
		} else if v.Error == "" {
			ran = append(ran, v.Name)
		}
	}
	sort.Strings(ran)
	return steps, cached, ran
}

// isStep tells the frontend's build steps ("[image] install packages",
// "[artifacts] ...", "[k3s] download ...") from BuildKit's bookkeeping
// (loading contexts, exporting, importing cache manifests), which runs on
// every solve and says nothing of what was rebuilt.
func isStep(name string) bool {
	return strings.HasPrefix(name, "[") && !strings.HasPrefix(name, "[context ") && !strings.HasPrefix(name, "[internal]")
}

// FileContext makes a directory holding just one binary under the name the
// frontend expects (a named context: agent, tools, k3s), linked or copied;
// cleanup removes it. The error names the binary, for the caller to add
// how to get it.
func FileContext(bin, name string) (dir string, cleanup func(), err error) {
	return filesContext(name, contextFile{bin, name})
}

// contextFile is a binary (src) and its name in a context's directory.
type contextFile struct{ src, name string }

// filesContext makes a directory holding each binary under its name; the
// directory is called after kind.
func filesContext(kind string, files ...contextFile) (dir string, cleanup func(), err error) {
	for _, f := range files {
		st, err := os.Stat(f.src)
		if err != nil {
			return "", nil, fmt.Errorf("%s binary: %w", f.name, err)
		}
		if st.IsDir() {
			return "", nil, fmt.Errorf("%s is a directory, want the %s binary", f.src, f.name)
		}
	}
	if dir, err = os.MkdirTemp("", "kairos-"+kind+"-ctx-"); err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	for _, f := range files {
		dst := filepath.Join(dir, f.name)
		if err := os.Link(f.src, dst); err != nil {
			if err := copyExecutable(f.src, dst); err != nil {
				cleanup()
				return "", nil, err
			}
		}
	}
	return dir, cleanup, nil
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
