// Package matrix is a release's build matrix: which images a release has
// (flavors x releases x variants x arches x models, and the k3s versions
// of the standard variant), read from a release.yaml and expanded into
// entries. Each entry is a frontend plan, so its tag, artifact names and
// labels are the ones a single build gives: nothing here names an image.
//
//	version: v3.3.0
//	flavors: [debian, ubuntu:24.04]   # default: every flavor file, every release
//	variants: [core, standard]        # default: both
//	arches: [amd64, arm64]            # default: amd64
//	models: [generic]                 # default: generic
//	k3s: [v1.31.2+k3s1]               # standard only; default: the frontend's
package matrix

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/frontend"
)

// File is a release.yaml.
type File struct {
	Version  string   `yaml:"version"`
	Flavors  []string `yaml:"flavors"`
	Variants []string `yaml:"variants"`
	Arches   []string `yaml:"arches"`
	Models   []string `yaml:"models"`
	K3s      []string `yaml:"k3s"`
}

// Filter narrows a matrix (the --FLAVOR=... of earthly.sh +release): an
// empty field keeps every value.
type Filter struct {
	Flavor, FlavorRelease, Variant, Arch, Model string
}

// Entry is one image of the release.
type Entry struct {
	Flavor, FlavorRelease, Variant, Arch, Model, Version, K3s string
	// Plan is the frontend's plan of the image target: its Release names
	// the tag (ImageTag) and the media (ArtifactName).
	Plan *frontend.Plan
}

// ID is the entry as a person reads it in progress and the summary.
func (e Entry) ID() string {
	id := strings.Join([]string{e.Flavor, e.FlavorRelease, e.Variant, e.Arch, e.Model}, "-")
	if e.K3s != "" {
		id += "-k3s" + e.K3s
	}
	return id
}

// Ref is where the entry's image is pushed: <registry>/<flavor>:<tag>.
func (e Entry) Ref(registry string) string {
	return strings.TrimSuffix(registry, "/") + "/" + e.Flavor + ":" + e.Plan.Release.ImageTag()
}

// BuildArgs are the entry as the frontend's build arguments.
func (e Entry) BuildArgs() map[string]string {
	a := map[string]string{
		frontend.ArgFlavor: e.Flavor, frontend.ArgFlavorRelease: e.FlavorRelease, frontend.ArgVariant: e.Variant,
		frontend.ArgVersion: e.Version, frontend.ArgModel: e.Model,
	}
	if e.K3s != "" {
		a[frontend.ArgK3SVersion] = e.K3s
	}
	return a
}

// Platform is the entry's OCI platform.
func (e Entry) Platform() ocispec.Platform {
	return platforms.Normalize(ocispec.Platform{OS: "linux", Architecture: e.Arch})
}

// Parse reads a release.yaml; errors name the file and line.
func Parse(name string, data []byte) (File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("%s: %w", name, err)
	}
	if f.Version == "" {
		return File{}, fmt.Errorf("%s: version is not set", name)
	}
	return f, nil
}

// Expand is every entry of the matrix the filter keeps, in a stable
// order. A value the frontend refuses (an unknown flavor or arch) is an
// error naming it; a filter that keeps nothing is one too.
func (f File) Expand(cat *flavors.Catalog, filter Filter) ([]Entry, error) {
	or := func(v []string, def ...string) []string {
		if len(v) == 0 {
			return def
		}
		return v
	}
	var fls []*flavors.Flavor
	for _, spec := range or(f.Flavors, cat.Names()...) {
		name, rel, _ := strings.Cut(spec, ":")
		found := false
		for _, fl := range cat.Flavors() {
			if fl.Name == name && (rel == "" || fl.Release == rel) {
				fls, found = append(fls, fl), true
			}
		}
		if !found {
			return nil, fmt.Errorf("flavors: %q is not a flavor of flavors/ (%s)", spec, strings.Join(cat.Names(), ", "))
		}
	}
	keep := func(v, want string) bool { return want == "" || v == want }
	var out []Entry
	seen := map[string]bool{}
	for _, fl := range fls {
		if !keep(fl.Name, filter.Flavor) || !keep(fl.Release, filter.FlavorRelease) {
			continue
		}
		for _, variant := range or(f.Variants, "core", "standard") {
			if !keep(variant, filter.Variant) {
				continue
			}
			k3s := []string{""}
			if variant == "standard" {
				k3s = or(f.K3s, frontend.DefaultK3SVersion)
			}
			for _, arch := range or(f.Arches, "amd64") {
				if !keep(arch, filter.Arch) {
					continue
				}
				for _, model := range or(f.Models, "generic") {
					if !keep(model, filter.Model) {
						continue
					}
					for _, k := range k3s {
						e := Entry{Flavor: fl.Name, FlavorRelease: fl.Release, Variant: variant, Arch: arch, Model: model, Version: f.Version, K3s: k}
						if seen[e.ID()] {
							continue
						}
						seen[e.ID()] = true
						o, err := frontend.ParseOptions(string(frontend.TargetImage), e.BuildArgs())
						if err != nil {
							return nil, fmt.Errorf("%s: %w", e.ID(), err)
						}
						if e.Plan, err = frontend.NewPlan(cat, o, e.Platform()); err != nil {
							return nil, fmt.Errorf("%s: %w", e.ID(), err)
						}
						out = append(out, e)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the matrix has no entry for %+v", filter)
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return strings.Compare(a.ID(), b.ID()) })
	return out, nil
}
