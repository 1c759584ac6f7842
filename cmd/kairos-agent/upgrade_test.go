package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/tests/registry"
)

// list-releases against a real registry: only the version tags newer than
// the running release, newest first.
func TestListReleases(t *testing.T) {
	reg := registry.Start(t, "127.0.0.1:5057")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"v1.0.0", "v1.1.0", "v1.2.0-rc1", "v0.9.0", "latest"} {
		registry.PushDir(t, dir, reg.Addr+"/kairos/debian:"+tag)
	}
	rel := filepath.Join(t.TempDir(), "kairos-release")
	if err := os.WriteFile(rel, []byte("KAIROS_VERSION=\"v1.0.0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := listReleasesCmd(rel)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--registry", reg.Addr + "/kairos/debian", "--allow-insecure-registries"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "v1.2.0-rc1\nv1.1.0\n" {
		t.Errorf("list-releases from v1.0.0:\n%s", got)
	}
}

// list-releases follows the pull policy of the agent: a registry reached as
// an RFC 1918 address that answers only over plain HTTP is refused without
// --allow-insecure-registries (no request leaves over plain HTTP), and
// listed with it.
func TestListReleasesPlainHTTPNeedsFlag(t *testing.T) {
	addr := registry.InProcess(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	registry.PushDir(t, dir, addr+"/kairos/debian:v1.1.0")
	plain := registry.RouteAll(t, addr)
	_, port, _ := strings.Cut(addr, ":")
	repo := "10.20.30.40:" + port + "/kairos/debian"
	rel := filepath.Join(t.TempDir(), "kairos-release")
	if err := os.WriteFile(rel, []byte("KAIROS_VERSION=\"v1.0.0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := listReleasesCmd(rel)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--registry", repo})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "--allow-insecure-registries") {
		t.Errorf("list-releases of a plain-HTTP %s without the flag: err = %v, output %q", repo, err, out.String())
	}
	if n := plain.Load(); n != 0 {
		t.Errorf("%d requests went over plain HTTP without the flag", n)
	}

	cmd = listReleasesCmd(rel)
	out.Reset()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--registry", repo, "--allow-insecure-registries"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "v1.1.0\n" {
		t.Errorf("list-releases with the flag:\n%s", got)
	}
}
