// Package pipeline runs a release: every entry of the matrix built on a
// builder of its platform (internal/builders), several at once; each
// image pushed by its builder with BuildKit's provenance and an
// annotation of its inputs, its build cache exported to the registry
// and imported by every other build; media written beside the release
// manifest and SHA256SUMS; images, indexes and sums signed with cosign;
// an SBOM per image. An entry that fails is recorded with its reason and
// the others go on; a run again skips the entries already pushed with
// the same inputs.
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/frontend"
	"github.com/kairos-io/kairos/internal/baseimage"
	"github.com/kairos-io/kairos/internal/builders"
	"github.com/kairos-io/kairos/internal/localbuild"
	"github.com/kairos-io/kairos/internal/matrix"
	"github.com/kairos-io/kairos/internal/publish"
	"github.com/kairos-io/kairos/internal/sbom"
)

// Config is one release run.
type Config struct {
	Version  string
	Registry string
	// CacheRepo is the repository of the build caches (a tag per entry
	// and target), "" for none.
	CacheRepo string
	// Dir receives the media, release.json and SHA256SUMS.
	Dir string
	// Catalog is the flavors the entries come from.
	Catalog  *flavors.Catalog
	Entries  []matrix.Entry
	Builders []*builders.Builder
	// Targets are the media built for each entry besides the image.
	Targets []string
	// Agents are the kairos-agent binaries, one per architecture (told
	// apart by their ELF headers); Writer and K3s are the other binaries
	// the frontend embeds (K3s empty: the standard entries download their
	// release).
	Agents      []string
	Writer, K3s string
	// Base gives an entry's base image (resolved once per distinct base,
	// before any build).
	Base func(ctx context.Context, e matrix.Entry) (baseimage.Base, error)
	// BuildArgs are added to every build (SOURCE_DATE_EPOCH).
	BuildArgs map[string]string
	// Self is the program running the release: its digest is an input
	// of every entry (it holds the frontend).
	Self     string
	SignKey  string
	Insecure bool
	// NoProvenance leaves BuildKit's provenance out.
	NoProvenance bool
	Progress     string
	Out          io.Writer
}

// Run builds the release and writes its manifest; the error says how
// many entries failed (each one's reason is in the manifest and summary).
func Run(ctx context.Context, cfg Config) (*Manifest, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(filepath.Dir(cfg.Dir), ".work-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	prev, err := ReadManifest(cfg.Dir)
	if err != nil {
		return nil, err
	}
	r := &run{Config: cfg, work: work, prev: map[string]ImageRecord{}, out: &syncWriter{w: cfg.Out}}
	for _, im := range prev.Images {
		if im.Error == "" {
			r.prev[im.Entry] = im
		}
	}
	if err := r.prepare(ctx); err != nil {
		return nil, err
	}
	defer r.cleanup()

	man := &Manifest{Version: cfg.Version, Registry: cfg.Registry, Images: make([]ImageRecord, len(cfg.Entries))}
	jobs := make([]builders.Job, len(cfg.Entries))
	for i, e := range cfg.Entries {
		jobs[i] = builders.Job{Name: e.ID(), Platform: e.Platform()}
		man.Images[i] = ImageRecord{Entry: e.ID(), Ref: e.Ref(cfg.Registry), Platform: platforms.Format(e.Platform())}
	}
	outcomes := builders.Schedule(ctx, cfg.Builders, jobs, func(ctx context.Context, b *builders.Builder, i int) error {
		start := time.Now()
		rec := &man.Images[i]
		rec.Builder = b.Name
		r.say("[%s] on builder %s", rec.Entry, b.Name)
		err := r.entry(ctx, b, i, rec)
		rec.Seconds = time.Since(start).Round(time.Second).Seconds()
		if err != nil {
			r.say("[%s] FAILED: %v", rec.Entry, err)
		} else if !rec.Skipped {
			r.say("[%s] pushed %s@%s in %s (%d of %d steps cached)", rec.Entry, rec.Ref, rec.Digest, time.Since(start).Round(time.Second), rec.Cached, rec.Steps)
		}
		return err
	})
	failed := 0
	for i, o := range outcomes {
		if o.Err != nil {
			man.Images[i].Error = o.Err.Error()
			man.Images[i].Digest, man.Images[i].Media = "", nil
			failed++
		}
	}
	man.Indexes = r.indexes(ctx, man.Images)
	for _, x := range man.Indexes {
		if x.Error != "" {
			failed++
		}
	}
	if err := WriteManifest(cfg.Dir, man); err != nil {
		return man, err
	}
	if cfg.SignKey != "" {
		sums := filepath.Join(cfg.Dir, matrix.SumsFile)
		if err := Cosign("sign-blob", "--key", cfg.SignKey, "--tlog-upload=false", "--yes",
			"--output-signature", sums+".sig", sums); err != nil {
			return man, fmt.Errorf("signing %s: %w", sums, err)
		}
	}
	Summary(cfg.Out, *man)
	if failed > 0 {
		return man, fmt.Errorf("%d of %d entries failed (see the summary)", failed, len(cfg.Entries)+len(man.Indexes))
	}
	return man, nil
}

type run struct {
	Config
	work     string
	prev     map[string]ImageRecord
	out      *syncWriter
	contexts map[string]string
	// agentDirs are the agent contexts by architecture.
	agentDirs map[string]string
	bases     []baseimage.Base
	baseErrs  []error
	inputs    []string
	cleanups  []func()
}

func (r *run) say(format string, a ...any) {
	r.out.line(fmt.Sprintf(format, a...))
}

func (r *run) cleanup() {
	for _, c := range r.cleanups {
		c()
	}
}

// prepare makes the named contexts once, resolves each distinct base once
// (a base that cannot be had fails only its entries) and digests every
// entry's inputs.
func (r *run) prepare(ctx context.Context) error {
	r.contexts = map[string]string{}
	agents, err := localbuild.ParseAgents(r.Agents...)
	if err != nil {
		return err
	}
	r.agentDirs = map[string]string{}
	// The agent and the mesh's program beside it, by architecture: both
	// are inputs of the image.
	agentSums, meshSums := map[string]string{}, map[string]string{}
	for arch, bin := range agents {
		dir, cleanup, err := localbuild.AgentContext(bin)
		if err != nil {
			return err
		}
		r.cleanups = append(r.cleanups, cleanup)
		r.agentDirs[arch] = dir
		sum, err := matrix.HashFile(bin)
		if err != nil {
			return err
		}
		agentSums[arch] = "sha256:" + sum.SHA256
		if sum, err = matrix.HashFile(localbuild.MeshFor(bin)); err != nil {
			return err
		}
		meshSums[arch] = "sha256:" + sum.SHA256
	}
	if len(r.Targets) > 0 {
		toolsDir, cleanup, err := localbuild.FileContext(r.Writer, frontend.ToolsFile)
		if err != nil {
			return err
		}
		r.cleanups = append(r.cleanups, cleanup)
		r.contexts[frontend.ContextTools] = toolsDir
	}
	if r.K3s != "" {
		k3sDir, cleanup, err := localbuild.FileContext(r.K3s, "k3s")
		if err != nil {
			return err
		}
		r.cleanups = append(r.cleanups, cleanup)
		r.contexts[frontend.ContextK3s] = k3sDir
	}
	files := map[string]string{}
	for k, f := range map[string]string{"writer": r.Writer, "k3s": r.K3s, "self": r.Self} {
		if f == "" || (k == "writer" && len(r.Targets) == 0) {
			continue
		}
		sum, err := matrix.HashFile(f)
		if err != nil {
			return err
		}
		files[k] = "sha256:" + sum.SHA256
	}
	type baseKey struct{ flavor, release, arch string }
	resolved := map[baseKey]int{}
	r.bases = make([]baseimage.Base, len(r.Entries))
	r.baseErrs = make([]error, len(r.Entries))
	r.inputs = make([]string, len(r.Entries))
	for i, e := range r.Entries {
		if _, err := agents.For(e.Arch); err != nil {
			r.baseErrs[i] = err
			continue
		}
		k := baseKey{e.Flavor, e.FlavorRelease, e.Arch}
		if j, ok := resolved[k]; ok {
			r.bases[i], r.baseErrs[i] = r.bases[j], r.baseErrs[j]
		} else {
			resolved[k] = i
			r.say("[%s] base image", e.ID())
			if r.bases[i], err = r.Base(ctx, e); err != nil {
				r.baseErrs[i] = fmt.Errorf("the base image: %w", err)
			}
		}
		if r.baseErrs[i] == nil {
			files := maps.Clone(files)
			files["agent"], files["mesh"] = agentSums[e.Arch], meshSums[e.Arch]
			r.inputs[i] = InputsDigest(e, r.Registry, r.Targets, r.BuildArgs, r.bases[i], files, !r.NoProvenance)
		}
	}
	return nil
}

// InputsDigest is the digest of everything an entry's image and media
// depend on: the entry (its build arguments and tag), the base image, the
// binaries embedded and the program that converts them (files: name ->
// digest), the targets and the extra build arguments.
func InputsDigest(e matrix.Entry, registry string, targets []string, args map[string]string, base baseimage.Base, files map[string]string, provenance bool) string {
	in := struct {
		Entry      string
		Ref        string
		Args       map[string]string
		Extra      map[string]string
		Base       string
		Files      map[string]string
		Targets    []string
		Provenance bool
	}{e.ID(), e.Ref(registry), e.BuildArgs(), args, base.Ref + "@" + base.Digest.String(), files, slices.Sorted(slices.Values(targets)), provenance}
	data, _ := json.Marshal(in) // maps marshal in key order
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// entry builds, pushes, signs and describes one entry.
func (r *run) entry(ctx context.Context, b *builders.Builder, i int, rec *ImageRecord) error {
	e := r.Entries[i]
	if err := r.baseErrs[i]; err != nil {
		return err
	}
	rec.Inputs = r.inputs[i]
	if r.unchanged(ctx, e, rec) {
		return nil
	}
	entryDir := filepath.Join(r.work, e.ID())
	if err := os.MkdirAll(entryDir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(entryDir)
	plain := HTTPRegistry(rec.Ref, r.Insecure)
	args := e.BuildArgs()
	for k, v := range r.BuildArgs {
		args[k] = v
	}
	progress := &prefixWriter{out: r.out, prefix: "[" + e.ID() + "] "}
	defer progress.Flush()
	build := func(target string, req localbuild.Request) (*localbuild.Result, error) {
		o, err := frontend.ParseOptions(target, args)
		if err != nil {
			return nil, err
		}
		req.Plan, err = frontend.NewPlan(r.Catalog, o, e.Platform())
		if err != nil {
			return nil, err
		}
		req.BuildArgs, req.Base, req.Progress, req.ProgressOut = args, r.bases[i], r.Progress, progress
		req.Contexts = map[string]string{frontend.ContextAgent: r.agentDirs[e.Arch]}
		for k, v := range r.contexts {
			if k == frontend.ContextK3s && e.K3s == "" || k == frontend.ContextTools && target == string(frontend.TargetImage) {
				continue
			}
			req.Contexts[k] = v
		}
		noSpec := filepath.Join(entryDir, ".nospec")
		if err := os.MkdirAll(noSpec, 0o755); err != nil {
			return nil, err
		}
		req.Contexts["dockerfile"] = noSpec
		if r.CacheRepo != "" {
			for _, t := range []string{string(frontend.TargetImage), target} {
				req.CacheImports = append(req.CacheImports, client.CacheOptionsEntry{Type: "registry", Attrs: cacheAttrs(r.cacheRef(e, t), plain)})
				if t == target {
					break
				}
			}
			ex := cacheAttrs(r.cacheRef(e, target), plain)
			// Every intermediate result, zstd: the media's own step
			// holds compressed files that gzip would crawl over.
			ex["mode"], ex["compression"] = "max", "zstd"
			req.CacheExports = []client.CacheOptionsEntry{{Type: "registry", Attrs: ex}}
		}
		res, err := localbuild.Run(ctx, b.Client, req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", target, err)
		}
		rec.Steps += res.Steps
		rec.Cached += res.Cached
		rec.Ran = append(rec.Ran, res.Ran...)
		return res, nil
	}

	res, err := build(string(frontend.TargetImage), localbuild.Request{
		OutputDir: entryDir, Push: rec.Ref, Insecure: plain, Provenance: !r.NoProvenance,
		Annotations: map[string]string{publish.InputsAnnotation: rec.Inputs},
	})
	if err != nil {
		return err
	}
	rec.Digest = res.Digest
	// The image is signed and described while its builder makes the
	// media: neither waits for the other.
	described := make(chan error, 1)
	go func() { described <- r.describe(ctx, e, rec.Ref, rec.Digest, entryDir, plain) }()
	var mediaErr error
	for _, t := range r.Targets {
		if _, mediaErr = build(t, localbuild.Request{OutputDir: entryDir}); mediaErr != nil {
			break
		}
	}
	if err := <-described; err != nil {
		return err
	}
	if mediaErr != nil {
		return mediaErr
	}
	// The media: what the builds wrote but per-file checksums (SHA256SUMS
	// covers them).
	files, err := os.ReadDir(entryDir)
	if err != nil {
		return err
	}
	for _, fi := range files {
		n := fi.Name()
		if fi.IsDir() || strings.HasSuffix(n, ".sha256") || strings.HasSuffix(n, ".syft") {
			continue
		}
		if err := os.Rename(filepath.Join(entryDir, n), filepath.Join(r.Dir, n)); err != nil {
			return err
		}
		rec.Media = append(rec.Media, n)
	}
	sort.Strings(rec.Media)
	return nil
}

// describe signs the pushed image and writes its SBOM into dir, attached
// to the image: as a signed attestation with a key, else as cosign's SBOM
// artifact.
func (r *run) describe(ctx context.Context, e matrix.Entry, ref, digest, dir string, plain bool) error {
	pinned := r.repo(e) + "@" + digest
	httpFlag := fmt.Sprintf("--allow-http-registry=%v", plain)
	if r.SignKey != "" {
		if err := Cosign("sign", "--key", r.SignKey, "--tlog-upload=false", "--yes", httpFlag, pinned); err != nil {
			return fmt.Errorf("signing %s: %w", ref, err)
		}
	}
	sbomFile := filepath.Join(dir, e.Plan.Release.ArtifactName()+".spdx.json")
	extras := []sbom.Package{{Name: "kairos-agent", Version: e.Version, PURL: "pkg:github/kairos-io/kairos@" + e.Version}}
	if e.K3s != "" {
		extras = append(extras, sbom.Package{Name: "k3s", Version: e.K3s, PURL: "pkg:github/k3s-io/k3s@" + strings.ReplaceAll(e.K3s, "+", "%2B")})
	}
	src := sbom.Source{Ref: pinned, PlainHTTP: plain, Platform: platforms.Format(e.Platform())}
	if err := sbom.Write(ctx, src, sbomFile, extras); err != nil {
		return err
	}
	attach := []string{"attach", "sbom", "--sbom", sbomFile, "--type", "spdx", httpFlag, pinned}
	if r.SignKey != "" {
		attach = []string{"attest", "--key", r.SignKey, "--type", "spdxjson", "--predicate", sbomFile, "--tlog-upload=false", "--yes", httpFlag, pinned}
	}
	if err := Cosign(attach...); err != nil {
		return fmt.Errorf("attaching the SBOM to %s: %w", ref, err)
	}
	return nil
}

// unchanged says whether an earlier run published the entry with the same
// inputs: its image is under the tag with them, and its media are in the
// release directory as that run listed them. The record is then reused.
func (r *run) unchanged(ctx context.Context, e matrix.Entry, rec *ImageRecord) bool {
	p, ok := r.prev[e.ID()]
	if !ok || p.Inputs != rec.Inputs || p.Ref != rec.Ref {
		return false
	}
	d, inputs, ok := publish.Pushed(ctx, rec.Ref, r.Insecure)
	if !ok || inputs != rec.Inputs || d.String() != p.Digest {
		return false
	}
	for _, m := range p.Media {
		// release.json is a file on disk like any other: a name in it is
		// only ever one file of the release directory.
		if !filepath.IsLocal(m) || strings.ContainsRune(m, filepath.Separator) {
			return false
		}
		if st, err := os.Lstat(filepath.Join(r.Dir, m)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	builder := rec.Builder
	*rec = p
	rec.Builder, rec.Skipped, rec.Steps, rec.Cached, rec.Ran = builder, true, 0, 0, nil
	r.say("[%s] already pushed as %s with the same inputs: skipped", e.ID(), p.Digest)
	return true
}

// indexes pushes, for each image built for several arches, the index
// that holds them under the tag without the arch.
func (r *run) indexes(ctx context.Context, recs []ImageRecord) []IndexRecord {
	groups := map[string][]int{}
	var order []string
	for i, e := range r.Entries {
		k := e.Flavor + "/" + e.Plan.Release.IndexTag()
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	var out []IndexRecord
	for _, k := range order {
		idx := groups[k]
		if len(idx) < 2 {
			continue
		}
		e := r.Entries[idx[0]]
		x := IndexRecord{Ref: r.repo(e) + ":" + e.Plan.Release.IndexTag()}
		var failed []string
		for _, i := range idx {
			if recs[i].Error != "" {
				failed = append(failed, recs[i].Entry)
				continue
			}
			x.Members = append(x.Members, r.repo(r.Entries[i])+"@"+recs[i].Digest)
		}
		if len(failed) > 0 {
			x.Error = "not pushed: " + strings.Join(failed, ", ") + " failed"
			out = append(out, x)
			continue
		}
		plain := HTTPRegistry(x.Ref, r.Insecure)
		d, err := publish.Index(ctx, x.Ref, x.Members, plain)
		if err == nil {
			x.Digest = d.String()
			if r.SignKey != "" {
				err = Cosign("sign", "--key", r.SignKey, "--tlog-upload=false", "--yes",
					fmt.Sprintf("--allow-http-registry=%v", plain), r.repo(e)+"@"+x.Digest)
			}
		}
		if err != nil {
			x.Error = err.Error()
		} else {
			r.say("[%s] index of %d arches: %s", x.Ref, len(x.Members), x.Digest)
		}
		out = append(out, x)
	}
	return out
}

// repo is the repository of an entry's image: <registry>/<flavor>.
func (r *run) repo(e matrix.Entry) string {
	return strings.TrimSuffix(r.Registry, "/") + "/" + e.Flavor
}

var tagUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// cacheRef is the registry cache of one entry's target: one tag per
// entry and target, without the version, so the next release starts
// from this one's steps.
func (r *run) cacheRef(e matrix.Entry, target string) string {
	tag := tagUnsafe.ReplaceAllString(e.ID()+"-"+target, "-")
	if len(tag) > 128 {
		sum := sha256.Sum256([]byte(tag))
		tag = tag[:111] + "-" + hex.EncodeToString(sum[:8])
	}
	return r.CacheRepo + ":" + tag
}

func cacheAttrs(ref string, plain bool) map[string]string {
	a := map[string]string{"ref": ref}
	if plain {
		a["registry.insecure"] = "true"
	}
	return a
}

// syncWriter serialises whole lines from concurrent builds.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) line(l string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintln(s.w, l)
}

// prefixWriter puts the entry's name before each line of its build's
// progress, so concurrent builds can be told apart.
type prefixWriter struct {
	out    *syncWriter
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := slices.Index(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.out.line(p.prefix + string(p.buf[:i]))
		p.buf = p.buf[i+1:]
	}
}

// Flush writes a last line without its newline.
func (p *prefixWriter) Flush() {
	if len(p.buf) > 0 {
		p.out.line(p.prefix + string(p.buf))
		p.buf = nil
	}
}
