package stages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/release"
)

// SystemInfo is what a step's only_* and node conditions compare with.
type SystemInfo struct {
	OSName, OSID, OSVersion string // os-release NAME, ID, VERSION_ID
	Arch                    string // Go's name: amd64, arm64
	Hostname                string
	// ServiceManager is systemd or openrc; empty when neither or both are
	// installed (then a step asking for one is skipped, as upstream).
	ServiceManager string
}

// ReadSystemInfo describes the system below root: its os-release and
// service manager, the running kernel's architecture and host name.
func ReadSystemInfo(root string) SystemInfo {
	si := SystemInfo{Arch: runtime.GOARCH}
	si.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile(filepath.Join(root, "/etc/os-release")); err == nil {
		if osr, err := release.Parse(b); err == nil {
			si.OSName, si.OSID, si.OSVersion = osr["NAME"], osr["ID"], osr["VERSION_ID"]
		}
	}
	has := func(paths ...string) bool {
		for _, p := range paths {
			if _, err := os.Stat(filepath.Join(root, p)); err == nil {
				return true
			}
		}
		return false
	}
	systemd := has("/usr/bin/systemctl", "/bin/systemctl")
	openrc := has("/sbin/openrc", "/usr/sbin/openrc", "/sbin/openrc-run")
	switch {
	case systemd && !openrc:
		si.ServiceManager = "systemd"
	case openrc && !systemd:
		si.ServiceManager = "openrc"
	}
	return si
}

func (r Runner) systemInfo() SystemInfo {
	if r.System != nil {
		return *r.System
	}
	return ReadSystemInfo(r.root())
}

// skip evaluates a step's conditions in upstream's order (node, if,
// only_os, only_os_version, only_arch, only_service_manager, if_files) and
// returns why the step does not run, or "" when it does.
func (r Runner) skip(ctx context.Context, s cloudconfig.Step, si SystemInfo) (string, error) {
	if s.Node != "" && s.Node != si.Hostname && !matches(s.Node, si.Hostname) {
		return fmt.Sprintf("node %q is not this host (%s)", s.Node, si.Hostname), nil
	}
	if run, err := r.condition(ctx, s.If); err != nil {
		return "", fmt.Errorf("if: %w", err)
	} else if !run {
		return fmt.Sprintf("condition %q is false", s.If), nil
	}
	for _, c := range []struct {
		key, re string
		values  []string
	}{
		{"only_os", s.OnlyOS, []string{si.OSName, si.OSID}},
		{"only_os_version", s.OnlyOSVersion, []string{si.OSVersion}},
		{"only_arch", s.OnlyArch, []string{si.Arch}},
	} {
		if c.re == "" {
			continue
		}
		ok := false
		for _, v := range c.values {
			ok = ok || (v != "" && matches(c.re, v))
		}
		if !ok {
			return fmt.Sprintf("%s %q does not match %s", c.key, c.re, strings.Join(c.values, "/")), nil
		}
	}
	if m := s.OnlyServiceManager; m != "" && m != si.ServiceManager {
		return fmt.Sprintf("only_service_manager %s: this system runs %q", m, si.ServiceManager), nil
	}
	exists := func(p string) bool {
		root, name := r.at(p) // /run paths: where this run's /run is
		_, err := os.Stat(filepath.Join(root, name))
		return err == nil
	}
	f := s.IfFiles
	if len(f.Any) > 0 && !anyOf(f.Any, exists) {
		return fmt.Sprintf("if_files: none of %s exists", strings.Join(f.Any, ", ")), nil
	}
	for _, p := range f.All {
		if !exists(p) {
			return fmt.Sprintf("if_files: %s does not exist", p), nil
		}
	}
	for _, p := range f.None {
		if exists(p) {
			return fmt.Sprintf("if_files: %s exists", p), nil
		}
	}
	return "", nil
}

func anyOf(paths []string, fn func(string) bool) bool {
	for _, p := range paths {
		if fn(p) {
			return true
		}
	}
	return false
}

// matches is a regexp match; the expressions were compiled by the
// config's validation, so a bad one cannot reach here.
func matches(re, s string) bool {
	ok, err := regexp.MatchString(re, s)
	return err == nil && ok
}
