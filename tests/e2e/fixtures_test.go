//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/platforms"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/frontend"
	"github.com/kairos-io/kairos/internal/buildkitd"
	"github.com/kairos-io/kairos/internal/release"
)

// The fixtures every test shares are built here, in Go, once per run and
// only when a test asks for them: `go test -tags e2e -run TestNetboot
// ./tests/e2e` builds the tools, the image and the media, and nothing for
// the gateway. What the machine must provide (QEMU, BuildKit's binaries,
// skopeo, docker-registry, the buildx client) is ./earthly.sh's setup.

// e2eVersion is the version of every image the tests build; fixed, with
// SOURCE_DATE_EPOCH, so that TestImageReproducible can rebuild and compare.
const (
	e2eVersion = "v0.0.0-e2e"
	e2eEpoch   = "1700000000"
)

// outDir holds the fixtures and the serial logs, kept after the run for
// inspection: $KAIROS_OUTPUT/e2e, by default build/e2e in the repository.
var outDir = func() string {
	out := os.Getenv("KAIROS_OUTPUT")
	if out == "" {
		out = "build"
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(repoRoot(), out)
	}
	return filepath.Join(out, "e2e")
}()

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func TestMain(m *testing.M) {
	// Every build of the run, the fixtures' and the tests' own, records the
	// same time.
	os.Setenv("SOURCE_DATE_EPOCH", e2eEpoch)
	os.Exit(m.Run())
}

// slow marks a scenario that ./earthly.sh +test leaves to +test-all
// (KAIROS_E2E_ALL=1), to keep CI within its time: it says so in the test
// output rather than passing unseen.
func slow(t *testing.T) {
	t.Helper()
	if os.Getenv("KAIROS_E2E_ALL") != "1" {
		t.Skip("slow scenario: runs in ./earthly.sh +test-all (KAIROS_E2E_ALL=1)")
	}
}

// once builds a fixture the first time a test needs it; a failure fails
// every test that needs it, with the same error.
type once[T any] struct {
	o   sync.Once
	v   T
	err error
}

func (o *once[T]) get(t *testing.T, what string, build func() (T, error)) T {
	t.Helper()
	o.o.Do(func() {
		start := time.Now()
		fmt.Fprintf(os.Stderr, "e2e fixture: building %s\n", what)
		o.v, o.err = build()
		fmt.Fprintf(os.Stderr, "e2e fixture: %s in %s\n", what, time.Since(start).Round(time.Second))
	})
	if o.err != nil {
		t.Fatalf("fixture %s: %v", what, o.err)
	}
	return o.v
}

// tools are our binaries, built as ./earthly.sh builds them for a release
// (static agent, the mesh's kairos-p2p beside it, and frontend) with the
// e2e version stamped in.
type tools struct {
	kairos, agent, agentArm64, frontend string
}

var toolsOnce once[tools]

func buildTools(t *testing.T) tools {
	return toolsOnce.get(t, "kairos, kairos-agent, kairos-p2p, kairos-frontend", func() (tools, error) {
		bin := filepath.Join(outDir, "bin")
		b := tools{
			kairos: filepath.Join(bin, "kairos"), agent: filepath.Join(bin, "kairos-agent"),
			agentArm64: filepath.Join(bin, "kairos-agent-arm64"), frontend: filepath.Join(bin, "kairos-frontend"),
		}
		ldflags := "-s -w -X github.com/kairos-io/kairos/internal/version.Version=" + e2eVersion
		for _, g := range []struct {
			out, pkg string
			env      []string
		}{
			{b.agent, "./cmd/kairos-agent", []string{"CGO_ENABLED=0"}},
			{b.agentArm64, "./cmd/kairos-agent", []string{"CGO_ENABLED=0", "GOARCH=arm64"}},
			{filepath.Join(bin, "kairos-p2p"), "./cmd/kairos-p2p", []string{"CGO_ENABLED=0"}},
			{filepath.Join(bin, "kairos-p2p-arm64"), "./cmd/kairos-p2p", []string{"CGO_ENABLED=0", "GOARCH=arm64"}},
			{b.frontend, "./cmd/kairos-frontend", []string{"CGO_ENABLED=0"}},
			{b.kairos, "./cmd/kairos", nil},
		} {
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", g.out, g.pkg)
			cmd.Dir = repoRoot()
			cmd.Env = append(os.Environ(), g.env...)
			if err := runCmd(cmd); err != nil {
				return b, err
			}
		}
		return b, nil
	})
}

// image is the Debian core image and its ISO, built through BuildKit by
// `kairos build`, the way ./earthly.sh +image +iso does.
type image struct {
	name    string // artifact base name, from the release package
	archive string // <name>.oci.tar
	iso     string // <name>.iso
}

var imageOnce once[image]

func buildImage(t *testing.T) image {
	b := buildTools(t)
	return imageOnce.get(t, "the Debian image and ISO", func() (image, error) {
		name, err := artifactName("debian", e2eVersion)
		if err != nil {
			return image{}, err
		}
		im := image{name: name, archive: filepath.Join(outDir, name+".oci.tar"), iso: filepath.Join(outDir, name+".iso")}
		// IMAGE_REPO is the registry the upgrades come from, as the
		// guest reaches it: `kairos-agent upgrade` with no source looks
		// there (lifecycle).
		err = runCmd(exec.Command(b.kairos, "build", "--flavor", "debian", "--version", e2eVersion, "--agent", b.agent,
			"--build-arg", frontend.ArgImageRepo+"="+guestRepo,
			"--output", outDir, "--progress", "plain", "--target", "image", "--target", "iso"))
		return im, err
	})
}

// artifactName is the name `kairos build` gives the artifacts of a flavor
// at a version: the same plan, the same release package.
func artifactName(flavor, version string) (string, error) {
	r, err := releaseOf(flavor, version)
	return r.ArtifactName(), err
}

// releaseOf is the release `kairos build` gives a flavor at a version.
func releaseOf(flavor, version string) (release.Release, error) {
	cat, err := flavors.Load()
	if err != nil {
		return release.Release{}, err
	}
	o, err := frontend.ParseOptions("image", map[string]string{frontend.ArgFlavor: flavor, frontend.ArgVersion: version})
	if err != nil {
		return release.Release{}, err
	}
	p, err := frontend.NewPlan(cat, o, platforms.Normalize(platforms.DefaultSpec()))
	if err != nil {
		return release.Release{}, err
	}
	return p.Release, nil
}

// media are the boot media `kairos artifacts` writes from the image (our Go
// writers, no root), with testdata/media-config.yaml as their cloud-config.
type media struct {
	dir             string // netboot files are <dir>/<name>{-kernel,-initrd,.squashfs,.ipxe}
	name            string
	iso, raw, qcow2 string
}

var mediaOnce once[media]

func buildMedia(t *testing.T) media {
	b, im := buildTools(t), buildImage(t)
	return mediaOnce.get(t, "ISO, netboot files and disks (kairos artifacts)", func() (media, error) {
		dir := filepath.Join(outDir, "artifacts")
		md := media{dir: dir, name: im.name, iso: filepath.Join(dir, im.name+".iso"),
			raw: filepath.Join(dir, im.name+".raw"), qcow2: filepath.Join(dir, im.name+".qcow2")}
		err := runCmd(exec.Command(b.kairos, "artifacts", "iso", "netboot", "raw", "qcow2",
			"--source", "oci-archive:"+im.archive, "--output", dir,
			"--cloud-config", filepath.Join(repoRoot(), "tests", "e2e", "testdata", "media-config.yaml")))
		return md, err
	})
}

// gateway is what the frontend tests drive: the gateway image as an OCI
// archive, the flavor's base image in the local cache, and BuildKit.
type gateway struct {
	archive string // kairos-frontend.oci.tar
	base    string // oci-layout://<dir>@sha256:<digest>
	host    string // BuildKit address
}

var gatewayOnce once[gateway]

func buildGateway(t *testing.T) gateway {
	b := buildTools(t)
	return gatewayOnce.get(t, "the gateway image", func() (gateway, error) {
		g := gateway{archive: filepath.Join(outDir, "kairos-frontend.oci.tar"), host: os.Getenv("BUILDKIT_HOST")}
		if g.host == "" {
			state, err := buildkitd.DefaultStateDir()
			if err != nil {
				return g, err
			}
			d := buildkitd.Daemon{StateDir: state}
			g.host = d.Socket()
			// buildctl does not start the private daemon as kairos build
			// does: a test driving only the gateway (run alone) starts it.
			c, err := buildkitd.Connect(context.Background(), d)
			if err != nil {
				return g, err
			}
			c.Close()
		}
		err := runCmd(exec.Command(b.kairos, "frontend-image", "--frontend", b.frontend,
			"--agent", "linux_"+runtime.GOARCH+"="+b.agent, "--agent", "linux_arm64="+b.agentArm64,
			"--tag", "127.0.0.1:5000/kairos/frontend:"+e2eVersion, "--output", g.archive))
		if err != nil {
			return g, err
		}
		out, err := exec.Command(b.kairos, "base", "--flavor", "debian").Output()
		if err != nil {
			return g, fmt.Errorf("kairos base --flavor debian: %w", err)
		}
		g.base = strings.TrimSpace(string(out))
		return g, nil
	})
}

// runCmd runs a fixture's build with its output in the test log's stream
// (go test -v shows progress while the build runs).
func runCmd(cmd *exec.Cmd) error {
	cmd.Stdout, cmd.Stderr = io.Writer(os.Stderr), os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	return nil
}
