package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/kairos-io/kairos/internal/matrix"
)

// Manifest is release.json: what a release published.
type Manifest struct {
	Version  string           `json:"version"`
	Registry string           `json:"registry"`
	Images   []ImageRecord    `json:"images"`
	Indexes  []IndexRecord    `json:"indexes,omitempty"`
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
	// Builder is the daemon that built it.
	Builder string `json:"builder,omitempty"`
	// Inputs is the digest of what the build depended on (InputsDigest).
	Inputs string `json:"inputs,omitempty"`
	// Steps and Cached count the build steps and those that came from a
	// cache, over every target of the entry.
	Steps  int `json:"steps,omitempty"`
	Cached int `json:"cached,omitempty"`
	// Ran names the steps that did not come from a cache.
	Ran []string `json:"ran,omitempty"`
	// Skipped: already pushed with the same inputs by an earlier run.
	Skipped bool `json:"skipped,omitempty"`
}

// IndexRecord is a multi-platform tag: the arches of one image.
type IndexRecord struct {
	Ref     string   `json:"ref"`
	Digest  string   `json:"digest,omitempty"`
	Members []string `json:"members"`
	Error   string   `json:"error,omitempty"`
}

// WriteManifest writes release.json and then SHA256SUMS over every file,
// release.json included.
func WriteManifest(dir string, man *Manifest) error {
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

// ReadManifest reads dir/release.json; a missing one is an empty manifest.
func ReadManifest(dir string) (Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, "release.json"))
	if errors.Is(err, os.ErrNotExist) {
		return Manifest{}, nil
	}
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", filepath.Join(dir, "release.json"), err)
	}
	return m, nil
}

// Summary prints the table closing a release: each entry, its builder,
// time, cache hits and digest or reason.
func Summary(w io.Writer, man Manifest) {
	fmt.Fprintf(w, "\nrelease %s (%s, from %s/%s):\n", man.Version, man.Registry, runtime.GOOS, runtime.GOARCH)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTRY\tBUILDER\tTIME\tCACHED\tRESULT")
	for _, r := range man.Images {
		res := r.Digest
		switch {
		case r.Error != "":
			res = "FAILED: " + r.Error
		case r.Skipped:
			res += " (already pushed with the same inputs)"
		}
		cached := "-"
		if r.Steps > 0 {
			cached = fmt.Sprintf("%d/%d", r.Cached, r.Steps)
		}
		builder := r.Builder
		if builder == "" {
			builder = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Entry, builder, time.Duration(r.Seconds*float64(time.Second)), cached, res)
	}
	for _, x := range man.Indexes {
		res := x.Digest
		if x.Error != "" {
			res = "FAILED: " + x.Error
		}
		fmt.Fprintf(tw, "%s\t-\t-\t-\t%s (index of %d)\n", x.Ref, res, len(x.Members))
	}
	tw.Flush()
}
