package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --dry-run prints every entry of the matrix with the tag it would get,
// narrowed by the flags.
func TestReleaseDryRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "release.yaml")
	if err := os.WriteFile(file, []byte("version: v2.0.0\nflavors: [debian]\nk3s: [v1.31.2+k3s1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want []string
		n    int
	}{
		{[]string{"-f", file}, []string{
			"debian-bookworm-core-amd64-generic -> r.example/kairos/debian:bookworm-core-amd64-generic-v2.0.0",
			"debian-bookworm-standard-amd64-generic-k3sv1.31.2+k3s1 -> r.example/kairos/debian:bookworm-standard-amd64-generic-v2.0.0-k3sv1.31.2-k3s1",
		}, 2},
		{[]string{"-f", file, "--variant", "core", "--version", "v2.0.1"}, []string{"debian:bookworm-core-amd64-generic-v2.0.1"}, 1},
	} {
		cmd := newReleaseCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append(c.args, "--registry", "r.example/kairos", "--dry-run"))
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: no %q in\n%s", c.args, w, out.String())
			}
		}
		if !strings.Contains(out.String(), ": "+string(rune('0'+c.n))+" entries") {
			t.Errorf("%v: want %d entries:\n%s", c.args, c.n, out.String())
		}
	}
	for _, args := range [][]string{{"--dry-run"}, {"--registry", "r/k", "--dry-run"}} {
		cmd := newReleaseCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetArgs(args)
		if err := cmd.Execute(); err == nil {
			t.Errorf("%v accepted (no registry, or no version)", args)
		}
	}
}
