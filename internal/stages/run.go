package stages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/repart"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/safefile"
)

// Runner executes steps against a root directory ("/" on a node).
type Runner struct {
	Root string
	// Exec runs a shell command; nil means /bin/sh -c.
	Exec func(ctx context.Context, command string) error
	// Keys fetches SSH keys given as github:<user>, gitlab:<user> or an
	// https URL; the zero value uses the public services.
	Keys KeyFetcher
	// System is what the only_* and node conditions compare with; the
	// zero value reads it from Root (os-release) and the running kernel.
	System *SystemInfo
	// HTTP fetches downloads; nil is http.DefaultClient.
	HTTP *http.Client
	// Kernel takes sysctl settings and modules; nil is the running kernel
	// when Root is "/", none otherwise.
	Kernel Kernel
	// RunDir, when set, is where the steps' /run paths go instead of
	// below Root (see at).
	RunDir string
	// Disks carries out layout steps; nil refuses them: a scratch root or
	// an image being built has no disk of its own.
	Disks Partitioner
	// ByLabel is where the datasource step looks for a CIDATA volume
	// (udev's /dev/disk/by-label on a node); "" looks for none.
	ByLabel string
}

// Partitioner changes the partitions of the node's disks (package
// repart).
type Partitioner interface {
	Apply(cloudconfig.Layout) error
	// Grow is cloud-init's growpart for one device.
	Grow(device string) error
}

// OnNode gives the runner what only a run on the node itself has: its
// disks (layout, growpart, logging to log) and its volumes by label (the
// datasource step's cdrom).
func (r *Runner) OnNode(log io.Writer) {
	p := repart.New(host.System)
	p.Log = log
	r.Disks, r.ByLabel = p, host.System.ByLabel
}

// RunStage runs <stage>.before, <stage> and <stage>.after from every source:
// within each, the steps of all sources in file order, `after` moving a
// step behind the ones it names. A failing step is logged and counted;
// the rest still run, so one broken step cannot leave a node half-booted.
func (r Runner) RunStage(ctx context.Context, sources []Source, stage string) error {
	var failed []string
	si := r.systemInfo()
	for _, name := range []string{stage + ".before", stage, stage + ".after"} {
		for _, src := range sources {
			if !src.Header || len(src.Config.Users) == 0 || name != usersStageOf(src) {
				continue
			}
			logrus.Infof("%s: users", src.Path)
			if err := r.applyUsers(ctx, src.Config.Users); err != nil {
				failed = append(failed, src.Path+": users")
				logrus.Errorf("%s: users: %v", src.Path, err)
			}
		}
		ops, errs := order(sources, name)
		for _, err := range errs {
			logrus.Errorf("%v", err)
			failed = append(failed, err.Error())
		}
		for _, o := range ops {
			label := o.label()
			why, err := r.skip(ctx, o.step, si)
			if err != nil {
				failed = append(failed, label)
				logrus.Errorf("%s: %v", label, err)
				continue
			}
			if why != "" {
				logrus.Debugf("%s: skipped: %s", label, why)
				continue
			}
			logrus.Infof("%s", label)
			if err := r.runStep(ctx, o.step); err != nil {
				failed = append(failed, label)
				logrus.Errorf("%s: %v", label, err)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("stage %s: %d step(s) failed: %s", stage, len(failed), strings.Join(failed, "; "))
	}
	return nil
}

func (r Runner) condition(ctx context.Context, cond string) (bool, error) {
	if strings.TrimSpace(cond) == "" {
		return true, nil
	}
	err := r.exec(ctx, cond)
	if err == nil {
		return true, nil
	}
	if _, ok := err.(*exec.ExitError); ok {
		return false, nil
	}
	return false, err
}

func (r Runner) exec(ctx context.Context, command string) error {
	if r.Exec != nil {
		return r.Exec(ctx, command)
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// root is the directory the stage's paths are below: every file the stage
// writes or changes goes through safefile, anchored there, so no link a
// user planted is followed, on a node or in an image.
func (r Runner) root() string {
	if r.Root == "" {
		return "/"
	}
	return r.Root
}

// usersStageOf is where a config's top-level users are made: the
// initramfs stage, so the system starts with them, except for the
// datasources' configs, fetched after switch-root: theirs come in the boot
// stage (as upstream makes every config's).
func usersStageOf(src Source) string {
	if strings.Contains(src.Path, cloudconfig.DatasourceDir+"/") {
		return CloudInitStage
	}
	return UsersStage
}

// runStep runs a step's parts in upstream's order: dns, downloads,
// directories, files, commands, hostname, sysctl, users, authorized_keys,
// modules, timesyncd, systemctl, environment, systemd_firstboot. The first
// part that fails ends the step.
func (r Runner) runStep(ctx context.Context, s cloudconfig.Step) error {
	for _, dev := range s.Growpart {
		if r.Disks == nil {
			return errors.New("growpart: this run has no disks to change (not the node's own root)")
		}
		if err := r.Disks.Grow(dev); err != nil {
			return fmt.Errorf("growpart %s: %w", dev, err)
		}
	}
	if len(s.DNS.Nameservers)+len(s.DNS.Search)+len(s.DNS.Options) > 0 {
		if err := r.writeDNS(s.DNS); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
	}
	for _, d := range s.Downloads {
		if err := r.download(ctx, d); err != nil {
			return fmt.Errorf("download %s: %w", d.Path, err)
		}
	}
	if err := r.entities(ctx, s.EnsureEntities, false); err != nil {
		return fmt.Errorf("ensure_entities: %w", err)
	}
	for _, d := range s.Directories {
		mode := os.FileMode(d.Permissions)
		if mode == 0 {
			mode = 0o755
		}
		uid, gid := owner(d.Owner, d.Group)
		root, name := r.at(d.Path)
		if err := safefile.Dir(root, name, mode, uid, gid); err != nil {
			return fmt.Errorf("directory %s: %w", d.Path, err)
		}
	}
	for _, f := range s.Files {
		if err := r.writeFile(f); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
	}
	for _, c := range s.Commands {
		if err := r.exec(ctx, c); err != nil {
			return fmt.Errorf("command %q: %w", c, err)
		}
	}
	if err := r.entities(ctx, s.DeleteEntities, true); err != nil {
		return fmt.Errorf("delete_entities: %w", err)
	}
	if s.Hostname != "" {
		if err := r.hostname(ctx, s.Hostname); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	if err := r.sysctl(s.Sysctl); err != nil {
		return err
	}
	if len(s.Users) > 0 {
		if err := r.applyUsers(ctx, s.Users); err != nil {
			return fmt.Errorf("users: %w", err)
		}
	}
	// One user's keys failing (a source offline) does not keep the
	// others' from being written.
	var keyErrs []error
	for _, user := range slices.Sorted(maps.Keys(s.AuthorizedKeys)) {
		if err := r.authorizeKeys(ctx, user, s.AuthorizedKeys[user]); err != nil {
			keyErrs = append(keyErrs, err)
		}
	}
	if err := errors.Join(keyErrs...); err != nil {
		return fmt.Errorf("authorized_keys: %w", err)
	}
	if err := r.modules(ctx, s.Modules); err != nil {
		return err
	}
	if len(s.Timesyncd) > 0 {
		if err := r.timesyncd(s.Timesyncd); err != nil {
			return fmt.Errorf("timesyncd: %w", err)
		}
	}
	for _, o := range s.Systemctl.Overrides {
		if err := r.override(o); err != nil {
			return fmt.Errorf("systemctl override of %s: %w", o.Service, err)
		}
	}
	for _, op := range []struct {
		verb  string
		units []string
	}{{"disable", s.Systemctl.Disable}, {"mask", s.Systemctl.Mask}, {"enable", s.Systemctl.Enable}, {"start", s.Systemctl.Start}} {
		verb := op.verb
		for _, u := range op.units {
			if err := r.exec(ctx, "systemctl "+verb+" "+shellWord(u)); err != nil {
				return fmt.Errorf("systemctl %s %s: %w", verb, u, err)
			}
		}
	}
	if len(s.Environment) > 0 {
		if err := r.writeEnvironment(s); err != nil {
			return fmt.Errorf("environment: %w", err)
		}
	}
	if err := r.firstboot(ctx, s.SystemdFirstboot); err != nil {
		return fmt.Errorf("systemd_firstboot: %w", err)
	}
	if !s.Datasource.IsZero() {
		if err := r.datasource(ctx, s.Datasource); err != nil {
			return fmt.Errorf("datasource: %w", err)
		}
	}
	if !s.Layout.IsZero() {
		if r.Disks == nil {
			return errors.New("layout: this run has no disks to change (not the node's own root)")
		}
		if err := r.Disks.Apply(s.Layout); err != nil {
			return fmt.Errorf("layout: %w", err)
		}
	}
	return nil
}

// hostname sets the host name: /etc/hostname, the 127.0.1.1 line of
// /etc/hosts, and the running kernel's (on the running system).
func (r Runner) hostname(ctx context.Context, name string) error {
	if err := safefile.WriteFile(r.root(), "/etc/hostname", []byte(name+"\n"), 0o644, -1, -1); err != nil {
		return err
	}
	hosts, err := safefile.ReadFile(r.root(), "/etc/hosts")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(hosts), "\n"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "127.0.1.1" || l == "" && len(hosts) == 0 {
			continue
		}
		lines = append(lines, l)
	}
	lines = append(lines, "127.0.1.1 "+name)
	if err := safefile.WriteFile(r.root(), "/etc/hosts", []byte(strings.Join(lines, "\n")+"\n"), 0o644, -1, -1); err != nil {
		return err
	}
	if r.live() {
		return r.exec(ctx, "hostname "+shellWord(name))
	}
	return nil
}

// writeEnvironment sets the step's variables in its environment file
// (/etc/environment by default): a variable already there is replaced in
// place, others are appended; every other line (comments too) is kept, and
// an existing file keeps its mode (a 0600 file of secrets stays 0600).
func (r Runner) writeEnvironment(s cloudconfig.Step) error {
	target := s.EnvironmentFile
	if target == "" {
		target = "/etc/environment"
	}
	root, name := r.at(target)
	existing, err := safefile.ReadFile(root, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	mode := os.FileMode(0o644)
	if st, err := safefile.Lstat(root, name); err == nil {
		mode = os.FileMode(st.Mode & 0o7777)
	}
	set := map[string]bool{}
	var lines []string
	for _, line := range strings.Split(strings.TrimSuffix(string(existing), "\n"), "\n") {
		k, _, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(k), "export "))
		if v, mine := s.Environment[k]; ok && mine && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			if set[k] {
				continue // a second definition: the first line holds it now
			}
			line, set[k] = k+"="+v, true
		}
		if line != "" || len(lines) > 0 {
			lines = append(lines, line)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
		if !set[k] {
			lines = append(lines, k+"="+s.Environment[k])
		}
	}
	return safefile.WriteFile(root, name, []byte(strings.Join(lines, "\n")+"\n"), mode, -1, -1)
}

// at is where a step's path p is written: below Root, except /run when
// RunDir stands for it (the initramfs's own /run, which becomes the
// system's: a rootfs-stage step writes /run/cos/cos-layout.env there
// while the new root is still read-only).
func (r Runner) at(p string) (root, name string) {
	if r.RunDir != "" && (p == "/run" || strings.HasPrefix(p, "/run/")) {
		return r.RunDir, "/" + strings.TrimPrefix(strings.TrimPrefix(p, "/run"), "/")
	}
	return r.root(), p
}

func shellWord(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// owner is the uid and gid to give what a step makes: an unprivileged run
// (tests, tools) leaves files owned by the caller (-1) unless an owner
// other than root is asked for.
func owner(uid, gid int) (int, int) {
	if uid == 0 && gid == 0 && os.Geteuid() != 0 {
		return -1, -1
	}
	return uid, gid
}

// Set is a loaded set of cloud-configs whose stages can run on the
// running system or chrooted into another root (a new image).
type Set struct {
	Sources []Source
	// Log gets the output of chrooted commands; nil is stdout.
	Log io.Writer
	// Live says the root is the node's own new root, booting (the
	// initramfs): sysctl and modules then change the running kernel.
	Live bool
	// RunDir is where the steps' /run paths go while the root's /run is
	// not the system's yet (the initramfs's /run); "" is below the root.
	RunDir string
}

// Has says whether any source has steps for stage (or its .before/.after).
func (s Set) Has(stage string) bool {
	for _, src := range s.Sources {
		for _, name := range []string{stage + ".before", stage, stage + ".after"} {
			if len(src.Config.Stages[name]) > 0 || (name == usersStageOf(src) && src.Header && len(src.Config.Users) > 0) ||
				(name == CloudInitStage && src.Header && src.Config.CloudInitStep() != nil) {
				return true
			}
		}
	}
	return false
}

// Run runs stage with files below root and commands chrooted into it
// (root "/" runs them directly).
func (s Set) Run(ctx context.Context, stage, root string) error {
	r := Runner{Root: root, RunDir: s.RunDir}
	if root != "/" && root != "" {
		log := s.Log
		if log == nil {
			log = os.Stdout
		}
		r.Exec = func(ctx context.Context, command string) error {
			cmd := exec.CommandContext(ctx, "chroot", root, "/bin/sh", "-c", command)
			cmd.Stdout, cmd.Stderr = log, log
			return cmd.Run()
		}
	}
	if s.Live {
		r.Kernel = RunningKernel(r)
	}
	if s.Live || root == "/" {
		log := s.Log
		if log == nil {
			log = os.Stdout
		}
		r.OnNode(log)
	}
	return r.RunStage(ctx, s.Sources, stage)
}

// datasource writes the user data of the first provider that has any to
// <path>/userdata.yaml (0600), where the next stages read it.
func (r Runner) datasource(ctx context.Context, ds cloudconfig.Datasource) error {
	data, provider, err := cloudconfig.Datasources{ByLabel: r.ByLabel, Client: r.HTTP}.FetchProviders(ctx, ds.Providers)
	if err != nil {
		return err
	}
	if provider == "" {
		logrus.Infof("datasource: no user data from %s", strings.Join(ds.Providers, ", "))
		return nil
	}
	root, dir := r.at(ds.Path)
	if err := safefile.Dir(root, dir, 0o700, -1, -1); err != nil {
		return err
	}
	dst := path.Join(dir, cloudconfig.UserdataFile)
	if old, err := safefile.ReadFile(root, dst); err == nil && bytes.Equal(old, data) {
		logrus.Infof("datasource: user data from %s unchanged", provider)
		return nil // the same every boot: /oem is not rewritten
	}
	if err := safefile.WriteFile(root, dst, data, 0o600, -1, -1); err != nil {
		return err
	}
	logrus.Infof("datasource: user data from %s written to %s", provider, path.Join(ds.Path, cloudconfig.UserdataFile))
	return nil
}
