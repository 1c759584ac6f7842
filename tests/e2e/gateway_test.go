//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/moby/buildkit/client"

	"github.com/kairos-io/kairos/internal/diskfmt/squashfs/squashfstest"
	"github.com/kairos-io/kairos/internal/release"
	"github.com/kairos-io/kairos/tests/registry"
)

// gatewayFixture is what the gateway tests share: the frontend image pushed
// to a real registry, a build context with a spec, and the offline base.
type gatewayFixture struct {
	frontendRef string // image reference BuildKit pulls the frontend from
	context     string // build context directory holding kairos.yaml
	k3s         string // directory holding the test k3s binary
	baseLayout  string // OCI layout directory of the Debian base
	baseDigest  string
	buildkit    string // BUILDKIT_HOST of the daemon the tests drive
	version     string // KAIROS_VERSION the spec asks for
}

const gatewayMarker = "built through the gateway frontend\n"

// gatewayVersion is the version of the standard-variant image and ISO the
// gateway tests build (and TestAutoInstall installs, from the cache).
const gatewayVersion = "v0.0.0-gateway"

const (
	testK3sVersion = "v1.31.2+k3s1"
	// testK3s stands in for the k3s release binary: it answers --version
	// and, started as a service, records its arguments and its K3S_
	// environment (0600: the token) and stays up.
	testK3s = `#!/bin/sh
case "$1" in --version | -v | version) echo 'k3s version v1.31.2+k3s1 (kairos test double)'; exit 0 ;; esac
mkdir -p /var/lib/rancher/k3s
echo "$*" > /var/lib/rancher/k3s/kairos-e2e-args
(umask 077; env | grep '^K3S_' | sort > /var/lib/rancher/k3s/kairos-e2e-env)
exec sleep 2147483647
`
)

// artifactName is the name the standard-variant fixture's artifacts carry.
func (f *gatewayFixture) artifactName() string {
	return "kairos-debian-bookworm-standard-amd64-generic-" + f.version + "-k3s" + testK3sVersion
}

// newGatewayFixture starts docker-registry on 127.0.0.1:5000, pushes the
// +frontend OCI archive to it with skopeo, and writes a spec that uses an
// overlay directory and an inline cloud-config from the build context.
// With detect, the spec names no flavor: the frontend reads it from the
// base image's os-release.
func newGatewayFixture(t *testing.T, version string, detect bool) *gatewayFixture {
	t.Helper()
	g := buildGateway(t)
	archive, base := g.archive, g.base
	layout, dgst, ok := strings.Cut(strings.TrimPrefix(base, "oci-layout://"), "@")
	if !strings.HasPrefix(base, "oci-layout://") || !ok {
		t.Fatalf("base image %q: want oci-layout://<dir>@sha256:<digest> (kairos base --flavor debian)", base)
	}
	host := g.host

	reg := registry.Start(t, registry.DefaultAddr)
	ref := reg.Addr + "/kairos/frontend:e2e"
	run(t, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci-archive:"+archive, "docker://"+ref)

	dir := t.TempDir()
	// A stand-in for the k3s release binary (GitHub is out of reach here):
	// the air-gapped path, the k3s named context.
	k3sDir := filepath.Join(t.TempDir(), "k3s")
	must(t, os.MkdirAll(k3sDir, 0o755))
	must(t, os.WriteFile(filepath.Join(k3sDir, "k3s"), []byte(testK3s), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "files/etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "files/etc/kairos-e2e-marker"), []byte(gatewayMarker), 0o644))
	flavor := "flavor: debian\nflavor_release: bookworm\n"
	if detect {
		flavor = ""
	}
	spec := fmt.Sprintf(`# syntax=%s
# kairos.yaml of the gateway end-to-end test
%sversion: %s
variant: standard
kubernetes:
  distribution: k3s
  version: %s
overlay: files
cloud_config:
  stages:
    boot:
      - name: gateway e2e
        commands: [echo gateway > /run/kairos-e2e]
artifacts:
  squashfs:
    compression: gzip
`, ref, flavor, version, testK3sVersion)
	must(t, os.WriteFile(filepath.Join(dir, "kairos.yaml"), []byte(spec), 0o644))
	return &gatewayFixture{frontendRef: ref, context: dir, k3s: k3sDir, baseLayout: layout, baseDigest: dgst, buildkit: host, version: version}
}

// TestGatewayBuildctl drives the frontend the way BuildKit users do:
// buildctl with gateway.v0 and the frontend image from a registry.
func TestGatewayBuildctl(t *testing.T) {
	f := newGatewayFixture(t, gatewayVersion, false)
	buildctl := f.buildctl
	t.Run("image", func(t *testing.T) {
		// An OCI archive, as users push it; exporting the whole rootfs to a
		// directory through the session is far slower.
		archive := filepath.Join(t.TempDir(), "image.oci.tar")
		status := buildctl(t, "image", "type=oci,dest="+archive)
		f.checkImage(t, archive)
		// This build differs from the CLI build of +test only after the
		// package step (user overlay and cloud-config, agent from the
		// frontend image): package installation must come from the cache.
		if v := vertices(t, status)["[image] install packages"]; v == nil || !v.Cached {
			t.Errorf("package installation ran again (vertex %+v): layers are not ordered so that overlay and agent changes keep it cached", v)
		}
		if v := vertices(t, status)["[image] add user overlay"]; v == nil {
			t.Error("no user overlay step in the solve status")
		}
	})
	t.Run("iso", func(t *testing.T) {
		out := t.TempDir()
		buildctl(t, "iso", "type=local,dest="+out)
		iso := filepath.Join(out, f.artifactName()+".iso")
		verifyChecksum(t, iso)
		report := run(t, "xorriso", "-indev", iso, "-report_el_torito", "plain")
		for _, want := range []string{"El Torito boot img :   1  BIOS", "El Torito boot img :   2  UEFI"} {
			if !strings.Contains(report, want) {
				t.Errorf("xorriso El Torito report lacks %q:\n%s", want, report)
			}
		}
		// The spec's squashfs compression reached the artifact step.
		sq := filepath.Join(t.TempDir(), "rootfs.squashfs")
		run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/rootfs.squashfs", sq)
		if info, err := squashfstest.Info(sq); err != nil || !strings.Contains(info, "Compression gzip") {
			t.Errorf("squashfs is not gzip-compressed as the spec asks: %v\n%s", err, info)
		}
	})
}

// buildctl builds target of the fixture's spec with buildctl through the
// gateway frontend image, and returns the rawjson progress.
func (f *gatewayFixture) buildctl(t *testing.T, target string, output string) string {
	t.Helper()
	return run(t, "buildctl", "--addr", f.buildkit, "build",
		"--progress", "rawjson",
		"--frontend", "gateway.v0",
		"--opt", "source="+f.frontendRef,
		"--local", "context="+f.context,
		"--local", "dockerfile="+f.context,
		"--opt", "filename=kairos.yaml",
		"--opt", "target="+target,
		"--oci-layout", "base="+f.baseLayout,
		"--local", "k3s="+f.k3s,
		"--opt", "context:k3s=local:k3s",
		"--opt", "context:base=oci-layout://base@"+f.baseDigest,
		"--output", output)
}

// archiveEntry unpacks an OCI archive and returns its layout's index and
// the one entry it must have (an image, or a multi-platform index).
func archiveEntry(t *testing.T, archive string) (v1.ImageIndex, v1.Descriptor) {
	t.Helper()
	dir := t.TempDir()
	run(t, "tar", "-xf", archive, "-C", dir)
	idx, err := layout.ImageIndexFromPath(dir)
	must(t, err)
	man, err := idx.IndexManifest()
	must(t, err)
	if len(man.Manifests) != 1 {
		t.Fatalf("%s: index.json lists %d entries, want 1", archive, len(man.Manifests))
	}
	return idx, man.Manifests[0]
}

// checkImage checks an image archive: its labels, and the files the spec
// asked for (version, overlay, cloud-config) plus the agent of the frontend
// image, read from the flattened layers.
func (f *gatewayFixture) checkImage(t *testing.T, archive string) {
	t.Helper()
	idx, desc := archiveEntry(t, archive)
	img, err := idx.Image(desc.Digest)
	must(t, err)
	cfg, err := img.ConfigFile()
	must(t, err)
	if cfg.Config.Labels["io.kairos.release"] != f.version || cfg.Config.Labels["io.kairos.flavor"] != "debian" || len(cfg.Config.Entrypoint) != 0 {
		t.Errorf("image config: labels %v, entrypoint %v", cfg.Config.Labels, cfg.Config.Entrypoint)
	}

	want := map[string][]byte{
		"usr/bin/k3s":             nil,
		"etc/kairos-release":      nil,
		"etc/kairos-e2e-marker":   nil,
		"system/oem/50_spec.yaml": nil,
		"usr/bin/kairos-agent":    nil,
	}
	want, _, seen := imageFiles(t, img, func(name string) bool { _, ok := want[name]; return ok })
	kv, err := release.Parse(want["etc/kairos-release"])
	must(t, err)
	if kv["KAIROS_VERSION"] != f.version || kv["KAIROS_FLAVOR"] != "debian" || kv["KAIROS_VARIANT"] != "standard" ||
		kv["KAIROS_SOFTWARE_VERSION"] != testK3sVersion || kv["KAIROS_SOFTWARE_VERSION_PREFIX"] != "k3s" {
		t.Errorf("kairos-release:\n%s", want["etc/kairos-release"])
	}
	if got := string(want["etc/kairos-e2e-marker"]); got != gatewayMarker {
		t.Errorf("overlay file from the build context: %q", got)
	}
	if cc := want["system/oem/50_spec.yaml"]; !bytes.HasPrefix(cc, []byte("#cloud-config\n")) || !bytes.Contains(cc, []byte("/run/kairos-e2e")) {
		t.Errorf("spec cloud_config in /system/oem: %q", cc)
	}
	// The agent is the one the frontend image carries for linux/amd64.
	agent := filepath.Join(t.TempDir(), "kairos-agent")
	must(t, os.WriteFile(agent, want["usr/bin/kairos-agent"], 0o755))
	out := run(t, agent, "version")
	if want := e2eVersion; strings.TrimSpace(out) != want {
		t.Errorf("kairos-agent version %q, want %q (the agent of the frontend image)", strings.TrimSpace(out), want)
	}
	for _, p := range []string{"boot/vmlinuz", "boot/initrd", "usr/lib/kairos/boot/BOOTX64.EFI",
		"usr/lib/systemd/system/k3s.service", "usr/lib/systemd/system/k3s-agent.service"} {
		if !seen[p] {
			t.Errorf("image lacks /%s", p)
		}
	}
	// k3s comes from the k3s context, and its services stay disabled until
	// the agent enables them on first boot.
	if string(want["usr/bin/k3s"]) != testK3s {
		t.Errorf("/usr/bin/k3s is not the binary of the k3s context: %q", want["usr/bin/k3s"])
	}
	for _, p := range []string{"etc/systemd/system/multi-user.target.wants/k3s.service", "etc/systemd/system/multi-user.target.wants/k3s-agent.service"} {
		if seen[p] {
			t.Errorf("/%s exists: k3s must ship disabled", p)
		}
	}
	if cfg.Config.Labels["io.kairos.software-version"] != testK3sVersion || cfg.Config.Labels["io.kairos.variant"] != "standard" {
		t.Errorf("labels %v", cfg.Config.Labels)
	}
}

// vertices reads buildctl's --progress rawjson output: the last state of
// each vertex, by name.
func vertices(t *testing.T, rawjson string) map[string]*client.Vertex {
	t.Helper()
	out := map[string]*client.Vertex{}
	for _, line := range strings.Split(rawjson, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var st client.SolveStatus
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			continue
		}
		for _, v := range st.Vertexes {
			out[v.Name] = v
		}
	}
	if len(out) == 0 {
		t.Fatalf("no solve status in buildctl output:\n%s", rawjson)
	}
	return out
}

// run runs a command and returns its combined output, failing the test
// with that output when it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := string(out)
		if len(tail) > 8000 {
			tail = "...\n" + tail[len(tail)-8000:]
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail)
	}
	return string(out)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestGatewayBuildx drives the same image through docker buildx (remote
// driver on our buildkitd, no Docker daemon): "# syntax=" in kairos.yaml
// picks the frontend, --build-context passes the offline base (whose
// os-release gives the flavor: the spec names none), and --call answers the
// targets and outline subrequests.
func TestGatewayBuildx(t *testing.T) {
	f := newGatewayFixture(t, "v0.0.0-gateway", true)
	if os.Getenv("DOCKER_CONFIG") == "" {
		t.Fatal("DOCKER_CONFIG is not set: ./earthly.sh +test points it at the docker-buildx plugin it builds")
	}
	// A private builder store, so parallel runs and the user's own builders
	// never collide.
	t.Setenv("BUILDX_CONFIG", t.TempDir())
	builder := fmt.Sprintf("kairos-e2e-%d", os.Getpid())
	run(t, "docker", "buildx", "create", "--name", builder, "--driver", "remote", f.buildkit)
	t.Cleanup(func() { exec.Command("docker", "buildx", "rm", builder).Run() })
	buildx := func(args ...string) string {
		t.Helper()
		all := append([]string{"buildx", "build", "--builder", builder, "--progress", "plain",
			"-f", filepath.Join(f.context, "kairos.yaml"),
			"--build-context", "base=oci-layout://" + f.baseLayout + "@" + f.baseDigest,
			"--build-context", "k3s=" + f.k3s}, args...)
		return run(t, "docker", append(all, f.context)...)
	}

	t.Run("call targets", func(t *testing.T) {
		out := buildx("--call", "targets")
		for _, want := range []string{"image", "iso", "recovery", "netboot", "all"} {
			if !strings.Contains(out, want) {
				t.Errorf("--call targets lacks %s:\n%s", want, out)
			}
		}
		out = buildx("--call", "outline", "--target", "iso")
		for _, want := range []string{"FLAVOR", "K3S_VERSION", "VERSION"} {
			if !strings.Contains(out, want) {
				t.Errorf("--call outline lacks %s:\n%s", want, out)
			}
		}
	})
	t.Run("netboot", func(t *testing.T) {
		out := t.TempDir()
		buildx("--target", "netboot", "--build-arg", "NETBOOT_URL=http://10.0.2.2:8080", "-o", "type=local,dest="+out)
		name := f.artifactName()
		for _, suffix := range []string{"-kernel", "-initrd", ".squashfs", ".ipxe"} {
			verifyChecksum(t, filepath.Join(out, name+suffix))
		}
		ipxe, err := os.ReadFile(filepath.Join(out, name+".ipxe"))
		must(t, err)
		for _, want := range []string{"#!ipxe", "set base-url http://10.0.2.2:8080", "root=live:${base-url}/" + name + ".squashfs", "initrd ${base-url}/" + name + "-initrd"} {
			if !strings.Contains(string(ipxe), want) {
				t.Errorf("iPXE script lacks %q:\n%s", want, ipxe)
			}
		}
	})
}
