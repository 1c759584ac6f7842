package stages

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

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

// Sysctl writes the value in place: procfs takes no new files or renames.
// The key was checked by the config's decoder (dotted names, no "/").
func (k runningKernel) Sysctl(key, value string) error {
	p := path.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (k runningKernel) LoadModule(ctx context.Context, name string) error {
	return k.r.exec(ctx, "modprobe "+shellWord(name))
}

// kernel is the Kernel the steps change: r.Kernel, else the running one
// when the root is the running system's. Elsewhere (an install's chroot)
// there is none: the settings would change the installer's kernel, not
// the node's; they apply at the node's own stages.
func (r Runner) kernel() Kernel {
	switch {
	case r.Kernel != nil:
		return r.Kernel
	case r.live():
		return RunningKernel(r)
	}
	return nil
}

// RunningKernel is the kernel the system runs: sysctl writes its
// /proc/sys, modules load with modprobe through r (chrooted into the new
// root in the initramfs, where its modules are).
func RunningKernel(r Runner) Kernel { return runningKernel{r} }

// sysctl sets each key (dots are /proc/sys's slashes).
func (r Runner) sysctl(settings map[string]string) error {
	k := r.kernel()
	if k == nil {
		if len(settings) > 0 {
			logrus.Warnf("sysctl: not applied here (not the node's running system): it applies in the node's own stages")
		}
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
		if len(mods) > 0 {
			logrus.Warnf("modules: not loaded here (not the node's running system): they load in the node's own stages")
		}
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
