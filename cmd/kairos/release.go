package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/internal/matrix"
	"github.com/kairos-io/kairos/internal/publish"
	"github.com/kairos-io/kairos/internal/rootfs"
	"github.com/kairos-io/kairos/internal/sbom"
)

type releaseFlags struct {
	file, registry, output string
	version                string
	signKey                string
	filter                 matrix.Filter
	targets                []string
	agent, writer, k3s     string
	progress, cacheDir     string
	insecure, dryRun       bool
}

func newReleaseCmd() *cobra.Command {
	f := &releaseFlags{}
	cmd := &cobra.Command{
		Use:   "release -f release.yaml --registry <host/org>",
		Short: "Build a release's matrix, push its images and write its media with checksums",
		Long: `Build every entry of a release matrix (release.yaml: version, flavors, variants,
arches, models, k3s versions; see internal/matrix), push each image to
<registry>/<flavor>:<flavor_release>-<variant>-<arch>-<model>-<version>[-k3s<version>],
and write its media to <output>/release/<version>/, with one SHA256SUMS for
every file and release.json listing each image's digest and the files.

Without -f the matrix is every flavor file, both variants, amd64 and the
generic model. An entry that fails is reported in the summary with its reason and fails the
release; the others still complete. --flavor, --flavor-release, --variant,
--arch and --model narrow the matrix.`,
		Example: `  kairos release -f release.yaml --registry registry.example.com/kairos --output build
  kairos release -f release.yaml --registry 127.0.0.1:5000/kairos --flavor debian --variant core --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRelease(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "the release matrix (default: every flavor file, both variants, amd64, generic)")
	fl.StringVar(&f.version, "version", "", "the release's version (overrides the matrix file's)")
	fl.StringVar(&f.registry, "registry", "", "where the images go: <host>[:port]/<org>")
	fl.StringVarP(&f.output, "output", "o", "build", "directory; the media go to <output>/release/<version>/")
	fl.StringVar(&f.filter.Flavor, "flavor", "", "only this flavor")
	fl.StringVar(&f.filter.FlavorRelease, "flavor-release", "", "only this flavor release")
	fl.StringVar(&f.filter.Variant, "variant", "", "only this variant (core, standard)")
	fl.StringVar(&f.filter.Arch, "arch", "", "only this arch")
	fl.StringVar(&f.filter.Model, "model", "", "only this model")
	fl.StringSliceVar(&f.targets, "target", []string{"iso"}, "media of each entry besides the image (iso, netboot, raw, qcow2, recovery)")
	fl.StringVar(&f.agent, "agent", "", "kairos-agent binary to embed (default: next to this program)")
	fl.StringVar(&f.writer, "writer", "", "kairos-frontend binary writing the media (default: next to this program)")
	fl.StringVar(&f.k3s, "k3s", "", "k3s binary for the standard entries instead of the release download (air-gapped)")
	fl.StringVar(&f.progress, "progress", "plain", "build progress: auto, plain, tty, quiet, rawjson")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "cache directory (default ~/.cache/kairos)")
	fl.BoolVar(&f.insecure, "insecure", false, "allow a registry over plain HTTP that is not on loopback")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the entries and their tags, build nothing")
	fl.StringVar(&f.signKey, "sign-key", "", "cosign private key: sign every image and SHA256SUMS (COSIGN_PASSWORD in the environment); cosign is $KAIROS_COSIGN or on PATH")
	cmd.AddCommand(newReleaseVerifyCmd())
	return cmd
}

// Manifest is release.json: what a release published.
type Manifest struct {
	Version  string           `json:"version"`
	Registry string           `json:"registry"`
	Images   []ImageRecord    `json:"images"`
	Files    []matrix.FileSum `json:"files"`
}

// ImageRecord is one entry of the release.
type ImageRecord struct {
	Entry    string   `json:"entry"`
	Ref      string   `json:"ref"`
	Digest   string   `json:"digest,omitempty"`
	Platform string   `json:"platform"`
	Media    []string `json:"media,omitempty"`
	Error    string   `json:"error,omitempty"`
	Seconds  float64  `json:"seconds"`
}

func runRelease(cmd *cobra.Command, f *releaseFlags) error {
	if f.registry == "" {
		return errors.New("--registry is required: <host>[:port]/<org>")
	}
	m := matrix.File{Version: f.version}
	if f.file != "" {
		data, err := os.ReadFile(f.file)
		if err != nil {
			return err
		}
		if m, err = matrix.Parse(f.file, data); err != nil {
			return err
		}
		if f.version != "" {
			m.Version = f.version
		}
	}
	if m.Version == "" {
		return errors.New("the release has no version: --version, or version: in the matrix file")
	}
	cat, err := flavors.Load()
	if err != nil {
		return err
	}
	entries, err := m.Expand(cat, f.filter)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "release %s: %d entries\n", m.Version, len(entries))
	for _, e := range entries {
		fmt.Fprintf(out, "  %s -> %s\n", e.ID(), e.Ref(f.registry))
	}
	if f.dryRun {
		return nil
	}
	if f.signKey != "" {
		if _, err := os.Stat(f.signKey); err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
	}
	host := platforms.Normalize(platforms.DefaultSpec())
	dir := filepath.Join(f.output, "release", m.Version)
	work := filepath.Join(f.output, "release", ".work")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	man := Manifest{Version: m.Version, Registry: f.registry}
	failed := 0
	for i, e := range entries {
		start := time.Now()
		rec := ImageRecord{Entry: e.ID(), Ref: e.Ref(f.registry), Platform: platforms.Format(e.Platform())}
		fmt.Fprintf(out, "[%d/%d] %s\n", i+1, len(entries), e.ID())
		err := func() error {
			if e.Arch != host.Architecture {
				return fmt.Errorf("a %s entry needs a %s builder (this one is %s)", e.Arch, e.Arch, host.Architecture)
			}
			entryDir := filepath.Join(work, e.ID())
			if err := os.RemoveAll(entryDir); err != nil {
				return err
			}
			defer os.RemoveAll(entryDir)
			bf := &buildFlags{
				targets: append([]string{"image"}, f.targets...), flavor: e.Flavor, release: e.FlavorRelease,
				variant: e.Variant, version: e.Version, model: e.Model, k3sVer: e.K3s,
				agent: f.agent, writer: f.writer, output: entryDir, progress: f.progress, cacheDir: f.cacheDir,
				args: map[string]string{},
			}
			if e.K3s != "" {
				bf.k3s = f.k3s
			}
			if err := runBuild(cmd, bf); err != nil {
				return err
			}
			name := e.Plan.Release.ArtifactName()
			archive := filepath.Join(entryDir, name+".oci.tar")
			d, err := publish.Push(cmd.Context(), archive, rec.Ref, v1.Platform{OS: "linux", Architecture: e.Arch}, f.insecure, os.TempDir())
			if err != nil {
				return err
			}
			rec.Digest = d.String()
			pinned := rec.Ref + "@" + rec.Digest
			http := "--allow-http-registry=" + fmt.Sprint(httpRegistry(rec.Ref, f.insecure))
			if f.signKey != "" {
				if err := cosignRun("sign", "--key", f.signKey, "--tlog-upload=false", "--yes", http, pinned); err != nil {
					return fmt.Errorf("signing %s: %w", rec.Ref, err)
				}
			}
			// The SBOM, beside the media and attached to the image: as a
			// signed attestation with a key, else as cosign's SBOM artifact.
			extras := []sbom.Package{{Name: "kairos-agent", Version: e.Version, PURL: "pkg:github/kairos-io/kairos@" + e.Version}}
			if e.K3s != "" {
				extras = append(extras, sbom.Package{Name: "k3s", Version: e.K3s, PURL: "pkg:github/k3s-io/k3s@" + strings.ReplaceAll(e.K3s, "+", "%2B")})
			}
			sbomFile := filepath.Join(entryDir, name+".spdx.json")
			if err := sbom.Write(cmd.Context(), archive, sbomFile, extras); err != nil {
				return err
			}
			attach := []string{"attach", "sbom", "--sbom", sbomFile, "--type", "spdx", http, pinned}
			if f.signKey != "" {
				attach = []string{"attest", "--key", f.signKey, "--type", "spdxjson", "--predicate", sbomFile, "--tlog-upload=false", "--yes", http, pinned}
			}
			if err := cosignRun(attach...); err != nil {
				return fmt.Errorf("attaching the SBOM to %s: %w", rec.Ref, err)
			}
			// The media: everything the build wrote but the image archive
			// (in the registry now) and per-file checksums (SHA256SUMS
			// covers them).
			files, err := os.ReadDir(entryDir)
			if err != nil {
				return err
			}
			for _, fi := range files {
				n := fi.Name()
				if n == name+".oci.tar" || strings.HasSuffix(n, ".sha256") || fi.IsDir() || strings.HasSuffix(n, ".syft") {
					continue
				}
				if err := os.Rename(filepath.Join(entryDir, n), filepath.Join(dir, n)); err != nil {
					return err
				}
				rec.Media = append(rec.Media, n)
			}
			return nil
		}()
		rec.Seconds = time.Since(start).Round(time.Second).Seconds()
		if err != nil {
			rec.Error = err.Error()
			failed++
			fmt.Fprintf(out, "[%d/%d] %s FAILED: %v\n", i+1, len(entries), e.ID(), err)
		} else {
			fmt.Fprintf(out, "[%d/%d] %s pushed %s@%s in %s\n", i+1, len(entries), e.ID(), rec.Ref, rec.Digest, time.Since(start).Round(time.Second))
		}
		man.Images = append(man.Images, rec)
	}
	os.Remove(work)
	if err := writeManifest(dir, &man); err != nil {
		return err
	}
	if f.signKey != "" {
		sums := filepath.Join(dir, matrix.SumsFile)
		if err := cosignRun("sign-blob", "--key", f.signKey, "--tlog-upload=false", "--yes",
			"--output-signature", sums+".sig", sums); err != nil {
			return fmt.Errorf("signing %s: %w", sums, err)
		}
	}
	summary(out, man)
	if failed > 0 {
		return fmt.Errorf("%d of %d entries failed (see the summary)", failed, len(entries))
	}
	return nil
}

// writeManifest writes release.json and then SHA256SUMS over every file,
// release.json included.
func writeManifest(dir string, man *Manifest) error {
	sums, err := matrix.WriteSums(dir)
	if err != nil {
		return err
	}
	man.Files = sums
	data, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "release.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	_, err = matrix.WriteSums(dir)
	return err
}

func summary(w io.Writer, man Manifest) {
	fmt.Fprintf(w, "\nrelease %s (%s, %s/%s):\n", man.Version, man.Registry, runtime.GOOS, runtime.GOARCH)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTRY\tTIME\tRESULT")
	for _, r := range man.Images {
		res := r.Digest
		if r.Error != "" {
			res = "FAILED: " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Entry, time.Duration(r.Seconds*float64(time.Second)), res)
	}
	tw.Flush()
}

// cosignRun runs cosign ($KAIROS_COSIGN, else on PATH) with the caller's
// environment (COSIGN_PASSWORD); its output is shown only when it fails.
func cosignRun(args ...string) error {
	bin := os.Getenv("KAIROS_COSIGN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("cosign"); err != nil {
			return errors.New("cosign not found: ./earthly.sh +release builds it (tools/cosign), or put it on PATH")
		}
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cosign %s: %w\n%s", args[0], err, out)
	}
	return nil
}

// httpRegistry says whether ref's registry is reached over plain HTTP:
// with --insecure, or on loopback, as the pulls' policy allows
// (rootfs.RemoteOptions).
func httpRegistry(ref string, insecure bool) bool {
	host, _, _ := strings.Cut(ref, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return insecure || rootfs.IsLoopback(strings.Trim(host, "[]"))
}
