package stages

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/safefile"
)

// live says whether the steps change the running system (root "/").
func (r Runner) live() bool { return r.root() == "/" }

// Kernel is what sysctl and modules steps change: the running kernel's
// settings and modules. Tests record instead.
type Kernel interface {
	Sysctl(key, value string) error
	LoadModule(ctx context.Context, name string) error
}

// runningKernel writes /proc/sys and runs modprobe.
type runningKernel struct{ r Runner }

func (k runningKernel) Sysctl(key, value string) error {
	p := path.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return safefile.WriteFile("/", p, []byte(value), 0o644, -1, -1)
}

func (k runningKernel) LoadModule(ctx context.Context, name string) error {
	return k.r.exec(ctx, "modprobe "+shellWord(name))
}

// kernel is the Kernel the steps change: r.Kernel, else the running one
// when the root is the running system's. In an image being built there is
// none: the settings would change the build machine, and they are for the
// node's boot anyway (the step runs again there).
func (r Runner) kernel() Kernel {
	switch {
	case r.Kernel != nil:
		return r.Kernel
	case r.live():
		return runningKernel{r}
	}
	return nil
}

// sysctl sets each key (dots are /proc/sys's slashes).
func (r Runner) sysctl(settings map[string]string) error {
	k := r.kernel()
	if k == nil {
		return nil
	}
	for _, key := range slices.Sorted(maps.Keys(settings)) {
		if err := k.Sysctl(key, settings[key]); err != nil {
			return fmt.Errorf("sysctl %s: %w", key, err)
		}
	}
	return nil
}

// modules loads kernel modules.
func (r Runner) modules(ctx context.Context, mods []string) error {
	k := r.kernel()
	if k == nil {
		return nil
	}
	for _, m := range mods {
		if err := k.LoadModule(ctx, m); err != nil {
			return fmt.Errorf("modprobe %s: %w", m, err)
		}
	}
	return nil
}

// timesyncd writes the [Time] settings of systemd-timesyncd.
func (r Runner) timesyncd(settings map[string]string) error {
	var b strings.Builder
	b.WriteString("# Written by kairos-agent from the cloud-config's timesyncd step.\n[Time]\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s=%s\n", k, settings[k])
	}
	return safefile.WriteFile(r.root(), "/etc/systemd/timesyncd.conf", []byte(b.String()), 0o644, -1, -1)
}

// override writes a unit drop-in:
// /etc/systemd/system/<service>.service.d/<name>.conf.
func (r Runner) override(o cloudconfig.Override) error {
	unit := o.Service
	if !strings.Contains(unit, ".") {
		unit += ".service"
	}
	name := o.Name
	if name == "" {
		name = "override-kairos"
	}
	if !strings.HasSuffix(name, ".conf") {
		name += ".conf"
	}
	p := path.Join("/etc/systemd/system", unit+".d", name)
	return safefile.WriteFile(r.root(), p, []byte(o.Content), 0o644, -1, -1)
}

// firstboot runs systemd-firstboot with each setting as --<key>=<value>.
func (r Runner) firstboot(ctx context.Context, settings map[string]string) error {
	if len(settings) == 0 {
		return nil
	}
	cmd := "systemd-firstboot" // chrooted into an image by r.exec
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		cmd += " " + shellWord("--"+k+"="+settings[k])
	}
	return r.exec(ctx, cmd)
}
