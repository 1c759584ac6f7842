package firstboot

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/cloudconfig"
)

func TestStartDeploysOnce(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/k3s"), []byte("#!/bin/sh\n"), 0o755)
	m := cloudconfig.Merged{Values: map[string]any{
		"k3s": map[string]any{"enabled": true, "args": []any{"--disable=traefik", "--node-label", `a="b c"`},
			"env": map[string]any{"K3S_TOKEN": "s3cr$t", "HTTP_PROXY": "http://p:3128"}},
		"k3s-agent": map[string]any{"enabled": false},
	}}
	var enabled []string
	n := Node{Host: host.New(root), Log: io.Discard, Enable: func(u string) error { enabled = append(enabled, u); return nil }}
	if err := n.Start(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "etc/sysconfig/k3s"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Written by kairos-agent start from the cloud-config.\n" +
		`K3S_ARGS="--disable=traefik --node-label a=\"b c\""` + "\n" +
		`HTTP_PROXY="http://p:3128"` + "\n" + `K3S_TOKEN="s3cr\$t"` + "\n"
	if string(data) != want {
		t.Errorf("sysconfig:\n%s\nwant:\n%s", data, want)
	}
	if len(enabled) != 1 || enabled[0] != "k3s" {
		t.Errorf("enabled %v", enabled)
	}
	if _, err := os.Stat(n.Host.Deployed); err != nil {
		t.Fatal("no sentinel")
	}
	// Deployed: a second start does nothing; without the sentinel it runs again.
	if err := n.Start(context.Background(), m); err != nil || len(enabled) != 1 {
		t.Errorf("second start: %v, enabled %v", err, enabled)
	}
	os.Remove(n.Host.Deployed)
	if err := n.Start(context.Background(), m); err != nil || len(enabled) != 2 {
		t.Errorf("start after removing the sentinel: %v, enabled %v", err, enabled)
	}
}

func TestStartWithoutK3sBinary(t *testing.T) {
	n := Node{Host: host.New(t.TempDir()), Log: io.Discard, Enable: func(string) error { return nil }}
	err := n.Start(context.Background(), cloudconfig.Merged{Values: map[string]any{"k3s": map[string]any{"enabled": true}}})
	if err == nil {
		t.Fatal("k3s enabled on an image without k3s accepted")
	}
	if _, serr := os.Stat(n.Host.Deployed); serr == nil {
		t.Error("sentinel written although nothing was deployed")
	}
}

// The block as upstream's docs write it: one argument as a scalar, and
// replace_args/replace_env over Kairos' own.
func TestSysconfigShapes(t *testing.T) {
	m := cloudconfig.Merged{Values: map[string]any{"k3s": map[string]any{"enabled": "true", "args": "--disable=traefik"}}}
	if got := string(Sysconfig(m.Config().K3s, nil, nil)); !strings.Contains(got, `K3S_ARGS="--disable=traefik"`) {
		t.Errorf("scalar args:\n%s", got)
	}
	k := cloudconfig.Kubernetes{Args: []string{"--a"}, Env: map[string]string{"X": "1"}}
	if got := string(Sysconfig(k, []string{"--kairos"}, map[string]string{"K": "v"})); !strings.Contains(got, `K3S_ARGS="--kairos --a"`) || !strings.Contains(got, `K="v"`) || !strings.Contains(got, `X="1"`) {
		t.Errorf("appended:\n%s", got)
	}
	k.ReplaceArgs, k.ReplaceEnv = true, true
	if got := string(Sysconfig(k, []string{"--kairos"}, map[string]string{"K": "v"})); !strings.Contains(got, `K3S_ARGS="--a"`) || strings.Contains(got, `K="v"`) {
		t.Errorf("replaced:\n%s", got)
	}
}

// Bundles install before the services, install.bundles first; a failure
// is reported and the rest goes on, unless fail_on_bundles_errors.
func TestStartBundles(t *testing.T) {
	var got []string
	n := Node{Host: host.New(t.TempDir()), Log: io.Discard, Enable: func(string) error { return nil },
		Bundle: func(_ context.Context, b cloudconfig.Bundle) error {
			got = append(got, b.Targets...)
			if b.Targets[0] == "run://bad" {
				return errors.New("bad bundle")
			}
			return nil
		}}
	values := map[string]any{
		"install": map[string]any{"bundles": []any{map[string]any{"targets": []any{"run://first"}}}},
		"bundles": []any{map[string]any{"targets": "run://bad"}, map[string]any{"targets": []any{"run://third"}}},
	}
	if err := n.Start(context.Background(), cloudconfig.Merged{Values: values}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "run://first run://bad run://third" {
		t.Errorf("bundles %v", got)
	}
	if _, err := os.Stat(n.Host.Deployed); err != nil {
		t.Error("not deployed")
	}
	os.Remove(n.Host.Deployed)
	got = nil
	values["fail_on_bundles_errors"] = true
	if err := n.Start(context.Background(), cloudconfig.Merged{Values: values}); err == nil || !strings.Contains(err.Error(), "bad bundle") {
		t.Errorf("fail_on_bundles_errors: %v", err)
	}
	if _, err := os.Stat(n.Host.Deployed); err == nil {
		t.Error("deployed although a bundle failed")
	}
}

// With a network token, start hands the roles to the mesh: it writes the
// mesh service's environment (0600, the token in it) and enables
// edgevpn@kairos; the k3s blocks are the mesh's to merge, not start's.
func TestStartWithP2P(t *testing.T) {
	root := t.TempDir()
	m := cloudconfig.Merged{Values: map[string]any{
		"p2p": map[string]any{"network_token": "dG9rZW4=", "vpn": map[string]any{"env": map[string]any{"IFACE": "mesh0"}}},
		"k3s": map[string]any{"enabled": true, "args": []any{"--disable=traefik"}},
	}}
	var enabled []string
	n := Node{Host: host.New(root), Log: io.Discard, Enable: func(u string) error { enabled = append(enabled, u); return nil }}
	if err := n.Start(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if len(enabled) != 1 || enabled[0] != "edgevpn@kairos" {
		t.Errorf("enabled %v, want edgevpn@kairos only", enabled)
	}
	path := filepath.Join(root, MeshEnvFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %o", MeshEnvFile, fi.Mode().Perm())
	}
	if !strings.Contains(string(data), "EDGEVPNTOKEN=\"dG9rZW4=\"\n") || !strings.Contains(string(data), "IFACE=\"mesh0\"\n") {
		t.Errorf("environment:\n%s", data)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/sysconfig/k3s")); err == nil {
		t.Error("start wrote the k3s configuration the mesh decides")
	}
}
