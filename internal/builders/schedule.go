package builders

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Job is one unit of work for a builder of its platform.
type Job struct {
	Name     string
	Platform ocispec.Platform
}

// Outcome is what became of a job.
type Outcome struct {
	// Builder is the name of the builder that ran it ("" if none could).
	Builder string
	Err     error
}

// Schedule runs every job on a builder of its platform: each builder
// takes the next pending job it can build as soon as one of its Jobs
// slots is free, so the builders work concurrently and a slow or failing
// entry holds up nobody else. A job that no builder can take fails with
// ErrNoBuilder; a failed job does not stop the others. Outcomes are in the
// order of jobs.
func Schedule(ctx context.Context, bs []*Builder, jobs []Job, run func(ctx context.Context, b *Builder, job int) error) []Outcome {
	out := make([]Outcome, len(jobs))
	var mu sync.Mutex
	var pending []int
	for i, j := range jobs {
		if !canBuild(bs, j.Platform) {
			out[i].Err = fmt.Errorf("%w %s (builders: %s)", ErrNoBuilder, platforms.Format(j.Platform), describe(bs))
			continue
		}
		pending = append(pending, i)
	}
	next := func(b *Builder) (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		for k, i := range pending {
			if b.Builds(jobs[i].Platform) {
				pending = append(pending[:k], pending[k+1:]...)
				return i, true
			}
		}
		return 0, false
	}
	var wg sync.WaitGroup
	for _, b := range bs {
		for range max(b.Jobs, 1) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i, ok := next(b)
					if !ok {
						return
					}
					out[i].Builder = b.Name
					if err := ctx.Err(); err != nil {
						out[i].Err = err
						continue
					}
					out[i].Err = run(ctx, b, i)
				}
			}()
		}
	}
	wg.Wait()
	return out
}

func canBuild(bs []*Builder, p ocispec.Platform) bool {
	for _, b := range bs {
		if b.Builds(p) {
			return true
		}
	}
	return false
}

func describe(bs []*Builder) string {
	var s []string
	for _, b := range bs {
		s = append(s, b.Name+": "+b.PlatformNames())
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "; ")
}
