//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kairos-io/kairos/internal/pipeline"
	"github.com/kairos-io/kairos/internal/sbom"
	"github.com/kairos-io/kairos/tests/bkdtest"
	"github.com/kairos-io/kairos/tests/cosigntool"
	"github.com/kairos-io/kairos/tests/registry"
	"github.com/kairos-io/kairos/tests/testca"
)

// TestRelease is the release pipeline on a fleet of real builders: two
// buildkitd daemons with their own state (one reached over TCP with mutual
// TLS) build Debian core and standard (k3s from the named context) at
// once, each pushing its image with provenance to a real registry (with
// credentials) and its
// build cache beside it; an Ubuntu entry whose base cannot be fetched
// fails alone. Then a third daemon with empty state, in a network
// namespace that reaches only the registry (not the Debian mirror),
// builds the same matrix from the registry cache alone.
func TestRelease(t *testing.T) {
	slow(t)
	tl := buildTools(t)
	keys := cosigntool.KeyPair(t)
	ns, hostIP := releaseNetns(t)
	l, err := net.Listen("tcp", hostIP+":0")
	must(t, err)
	regAddr := l.Addr().String()
	l.Close()
	// A registry that wants credentials, as a company's does: builders,
	// cosign, syft and the release's own reads get them from the docker
	// configuration, as with buildctl and buildx.
	reg := registry.StartAuth(t, regAddr, "releaser", "s3cret-pass")
	dockerConfig := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`,
		reg.Addr, base64.StdEncoding.EncodeToString([]byte("releaser:s3cret-pass")))), 0o600))
	t.Setenv("DOCKER_CONFIG", dockerConfig)
	repo := reg.Addr + "/kairos"
	ca := testca.New(t, "kairos release CA")
	one := bkdtest.Start(t, bkdtest.Options{HTTPRegistries: []string{reg.Addr}})
	two := bkdtest.Start(t, bkdtest.Options{TLS: ca, HTTPRegistries: []string{reg.Addr}})

	k3s := filepath.Join(t.TempDir(), "k3s")
	must(t, os.WriteFile(k3s, []byte(testK3s), 0o755))
	matrixFile := filepath.Join(t.TempDir(), "release.yaml")
	must(t, os.WriteFile(matrixFile, []byte(fmt.Sprintf(`version: %s
flavors: [debian, "ubuntu:24.04"]
variants: [core, standard]
k3s: [%q]
`, e2eVersion, testK3sVersion)), 0o644))
	n := 0
	release := func(out string, builders ...string) (string, error) {
		n++
		args := []string{"release", "-f", matrixFile, "--registry", repo, "--insecure", "--output", out,
			"--agent", tl.agent, "--writer", tl.frontend, "--k3s", k3s, "--sign-key", filepath.Join(keys, "cosign.key"), "--target", "iso"}
		for _, b := range builders {
			args = append(args, "--builder", b)
		}
		logFile := filepath.Join(outDir, fmt.Sprintf("release-%d.log", n))
		f, err := os.Create(logFile)
		must(t, err)
		defer f.Close()
		cmd := exec.Command(tl.kairos, args...)
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+cosigntool.Password)
		cmd.Stdout, cmd.Stderr = f, f
		start := time.Now()
		err = cmd.Run()
		t.Logf("kairos release (%s) in %s: %v; log %s", strings.Join(builders, " "), time.Since(start).Round(time.Second), err, logFile)
		data, _ := os.ReadFile(logFile)
		return string(data), err
	}
	debian := func(m pipeline.Manifest) (recs []pipeline.ImageRecord) {
		for _, im := range m.Images {
			if strings.HasPrefix(im.Entry, "debian-") {
				recs = append(recs, im)
			}
		}
		return recs
	}

	// 1. The cold release on two builders.
	out1 := t.TempDir()
	dir := filepath.Join(out1, "release", e2eVersion)
	start := time.Now()
	log1, err := release(out1, "one="+one.Addr+",platforms=linux/amd64",
		"two="+two.Addr+",ca="+two.CA+",cert="+two.Cert+",key="+two.Key)
	cold := time.Since(start)
	if err == nil {
		t.Errorf("the release exited 0 with failing entries")
	}
	man, err := pipeline.ReadManifest(dir)
	must(t, err)
	builders := map[string]bool{}
	for _, im := range man.Images {
		switch {
		case strings.HasPrefix(im.Entry, "ubuntu-"):
			if !strings.Contains(im.Error, "base image") {
				t.Errorf("%s: error %q, want the base image's", im.Entry, im.Error)
			}
		case im.Error != "" || im.Digest == "":
			t.Fatalf("%s failed: %s (log above)", im.Entry, im.Error)
		default:
			builders[im.Builder] = true
		}
	}
	if len(debian(man)) != 2 || !builders["one"] || !builders["two"] {
		t.Errorf("the Debian entries ran on builders %v: want both, at once", builders)
	}
	for _, w := range []string{"ENTRY", "BUILDER", "CACHED", "FAILED: the base image", "entries failed"} {
		if !strings.Contains(log1, w) {
			t.Errorf("the release output has no %q", w)
		}
	}

	// Every tag and label, and BuildKit's provenance.
	for _, im := range debian(man) {
		out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "--authfile", filepath.Join(dockerConfig, "config.json"), "docker://"+im.Ref).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v\n%s", im.Ref, err, out)
		}
		var info struct {
			Digest string
			Labels map[string]string
		}
		must(t, json.Unmarshal(out, &info))
		want := map[string]string{"io.kairos.flavor": "debian", "io.kairos.release": e2eVersion, "io.kairos.targetarch": "amd64"}
		if strings.Contains(im.Entry, "standard") {
			want["io.kairos.variant"], want["io.kairos.software-version"] = "standard", testK3sVersion
		} else {
			want["io.kairos.variant"] = "core"
		}
		for k, v := range want {
			if info.Labels[k] != v {
				t.Errorf("%s: label %s=%q, want %q", im.Ref, k, info.Labels[k], v)
			}
		}
		if !hasProvenance(t, im.Ref) {
			t.Errorf("%s carries no SLSA provenance attestation", im.Ref)
		}
	}
	c := exec.Command("sha256sum", "-c", "SHA256SUMS")
	c.Dir = dir
	if out, err := c.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
	}
	for _, im := range debian(man) {
		var doc string
		for _, m := range im.Media {
			if strings.HasSuffix(m, ".spdx.json") {
				doc = filepath.Join(dir, m)
			}
		}
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatalf("%s: no SBOM beside the media (%v)", im.Entry, err)
		}
		pkgs, err := sbom.Names(data)
		must(t, err)
		want := map[string]string{"systemd": "", "kairos-agent": e2eVersion}
		if strings.Contains(im.Entry, "standard") {
			want["k3s"] = testK3sVersion
		}
		for p, v := range want {
			if got, ok := pkgs[p]; !ok || got == "" || (v != "" && got != v) {
				t.Errorf("%s: SBOM lists %s as %q, want %q", im.Entry, p, got, v)
			}
		}
		kernel := ""
		for p, v := range pkgs {
			if strings.HasPrefix(p, "linux-image-") && v != "" {
				kernel = p + " " + v
			}
		}
		if kernel == "" {
			t.Errorf("%s: the SBOM lists no kernel package", im.Entry)
		}
		t.Logf("%s: SBOM of %d packages: systemd %s, %s, kairos-agent %s, k3s %q", im.Entry, len(pkgs), pkgs["systemd"], kernel, pkgs["kairos-agent"], pkgs["k3s"])
	}

	// Signatures: stock cosign and `kairos release verify`, then a tag
	// re-pointed to an unsigned image.
	pub := cosigntool.Pub(keys)
	for _, im := range debian(man) {
		cosigntool.Run(t, keys, "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", im.Ref)
	}
	verify := func() (string, error) {
		out, err := exec.Command(tl.kairos, "release", "verify", "--key", pub, "--insecure", dir).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(); err != nil {
		t.Errorf("kairos release verify: %v\n%s", err, out)
	}
	core := debian(man)[0]
	coreRef, err := name.ParseReference(core.Ref, name.Insecure)
	must(t, err)
	unsigned, err := random.Image(1024, 1)
	must(t, err)
	auth := remote.WithAuthFromKeychain(authn.DefaultKeychain)
	must(t, remote.Write(coreRef, unsigned, auth))
	if out, err := exec.Command(cosigntool.Path(t), "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", core.Ref).CombinedOutput(); err == nil {
		t.Errorf("cosign verify passed on a tag re-pointed to an unsigned image:\n%s", out)
	}
	if out, err := verify(); err == nil || !strings.Contains(out, core.Ref) {
		t.Errorf("kairos release verify passed or did not name %s: %v\n%s", core.Ref, err, out)
	}
	// Back to the released image for what follows.
	signed, err := name.NewDigest(core.Ref[:strings.LastIndex(core.Ref, ":")]+"@"+core.Digest, name.Insecure)
	must(t, err)
	desc, err := remote.Get(signed, auth)
	must(t, err)
	must(t, remote.Tag(coreRef.(name.Tag), desc, auth))

	// 2. Run again: everything already pushed with the same inputs is
	// skipped; the failing entries are tried (and fail) again.
	log2, _ := release(out1, "one="+one.Addr+",platforms=linux/amd64")
	man2, err := pipeline.ReadManifest(dir)
	must(t, err)
	for _, im := range debian(man2) {
		if !im.Skipped {
			t.Errorf("%s was built again with the same inputs", im.Entry)
		}
	}
	if !strings.Contains(log2, "skipped") {
		t.Errorf("the second run says nothing of skipping")
	}

	// 3. A third builder, empty, that cannot reach the Debian mirror: the
	// registry cache alone gives every step.
	three := bkdtest.Start(t, bkdtest.Options{NetNS: ns, HTTPRegistries: []string{reg.Addr}})
	out3 := t.TempDir()
	start = time.Now()
	release(out3, "three="+three.Addr+",jobs=2")
	warm := time.Since(start)
	man3, err := pipeline.ReadManifest(filepath.Join(out3, "release", e2eVersion))
	must(t, err)
	for _, im := range debian(man3) {
		if im.Error != "" {
			t.Errorf("%s on the fresh builder: %s", im.Entry, im.Error)
		}
		for _, step := range im.Ran {
			if strings.Contains(step, "install packages") || strings.HasPrefix(step, "[boot] kernel") || strings.HasPrefix(step, "[artifacts]") {
				t.Errorf("%s: %q ran on the fresh builder instead of coming from the registry cache", im.Entry, step)
			}
		}
		t.Logf("%s on the fresh builder: %d of %d steps cached; ran: %q", im.Entry, im.Cached, im.Steps, im.Ran)
	}
	fmt.Printf("release cache benchmark: cold on two builders %s, a third empty builder with only the registry cache %s: ratio %.2f (target <= 0.25)\n",
		cold.Round(time.Second), warm.Round(time.Second), warm.Seconds()/cold.Seconds())
}

// releaseNetns makes a network namespace joined to this one by a veth
// pair, with no route beyond it: a builder there reaches the host's
// address on the pair and nothing else.
func releaseNetns(t *testing.T) (ns, hostIP string) {
	t.Helper()
	ns = fmt.Sprintf("krel%d", os.Getpid()%100000)
	veth := ns + "h"
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", veth).Run() })
	run("addr", "add", "10.231.0.1/30", "dev", veth)
	run("link", "set", veth, "up")
	run("-n", ns, "addr", "add", "10.231.0.2/30", "dev", "eth0")
	run("-n", ns, "link", "set", "eth0", "up")
	run("-n", ns, "link", "set", "lo", "up")
	return ns, "10.231.0.1"
}

// hasProvenance: the image index at ref holds an attestation manifest
// whose in-toto statement is SLSA provenance.
func hasProvenance(t *testing.T, ref string) bool {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	must(t, err)
	idx, err := remote.Index(r, remote.WithContext(context.Background()), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		t.Errorf("%s is not an index: %v", ref, err)
		return false
	}
	m, err := idx.IndexManifest()
	must(t, err)
	for _, d := range m.Manifests {
		if d.Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
			continue
		}
		img, err := idx.Image(d.Digest)
		must(t, err)
		layers, err := img.Layers()
		must(t, err)
		for _, l := range layers {
			if mt, _ := l.MediaType(); !strings.Contains(string(mt), "in-toto") {
				continue
			}
			rc, err := l.Uncompressed()
			must(t, err)
			data, _ := io.ReadAll(rc)
			rc.Close()
			if bytes.Contains(data, []byte("slsa.dev/provenance")) {
				return true
			}
		}
	}
	return false
}
