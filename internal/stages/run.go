package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/kairos-io/kairos/internal/safefile"
)

// Runner executes steps against a root directory ("/" on a node).
type Runner struct {
	Root string
	// Exec runs a shell command; nil means /bin/sh -c.
	Exec func(ctx context.Context, command string) error
}

// RunStage runs <stage>.before, <stage> and <stage>.after from every source,
// in source order. A failing step is logged and counted; the rest still run,
// so one broken step cannot leave a node half-booted.
func (r Runner) RunStage(ctx context.Context, sources []Source, stage string) error {
	var failed []string
	for _, name := range []string{stage + ".before", stage, stage + ".after"} {
		for _, src := range sources {
			if name == UsersStage && len(src.Config.Users) > 0 {
				logrus.Infof("%s: users", src.Path)
				if err := r.applyUsers(ctx, src.Config.Users); err != nil {
					failed = append(failed, src.Path+": users")
					logrus.Errorf("%s: users: %v", src.Path, err)
				}
			}
			for i, step := range src.Config.Stages[name] {
				label := fmt.Sprintf("%s: stages.%s[%d]", src.Path, name, i)
				if step.Name != "" {
					label += " (" + step.Name + ")"
				}
				run, err := r.condition(ctx, step.If)
				if err != nil {
					failed = append(failed, label)
					logrus.Errorf("%s: if: %v", label, err)
					continue
				}
				if !run {
					logrus.Debugf("%s: skipped, condition %q is false", label, step.If)
					continue
				}
				logrus.Infof("%s", label)
				if err := r.runStep(ctx, step); err != nil {
					failed = append(failed, label)
					logrus.Errorf("%s: %v", label, err)
				}
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

func (r Runner) runStep(ctx context.Context, s Step) error {
	for _, d := range s.Directories {
		mode := os.FileMode(d.Permissions)
		if mode == 0 {
			mode = 0o755
		}
		uid, gid := owner(d.Owner, d.Group)
		if err := safefile.Dir(r.root(), d.Path, mode, uid, gid); err != nil {
			return fmt.Errorf("directory %s: %w", d.Path, err)
		}
	}
	for _, f := range s.Files {
		if err := r.writeFile(f); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
	}
	if s.Hostname != "" {
		if err := safefile.WriteFile(r.root(), "/etc/hostname", []byte(s.Hostname+"\n"), 0o644, -1, -1); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
		if r.root() == "/" {
			if err := r.exec(ctx, "hostname "+shellWord(s.Hostname)); err != nil {
				return fmt.Errorf("hostname: %w", err)
			}
		}
	}
	if len(s.Users) > 0 {
		if err := r.applyUsers(ctx, s.Users); err != nil {
			return fmt.Errorf("users: %w", err)
		}
	}
	if len(s.DNS.Nameservers)+len(s.DNS.Search)+len(s.DNS.Options) > 0 {
		if err := r.writeDNS(s.DNS); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
	}
	if len(s.Environment) > 0 {
		if err := r.writeEnvironment(s); err != nil {
			return fmt.Errorf("environment: %w", err)
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
	for _, c := range s.Commands {
		if err := r.exec(ctx, c); err != nil {
			return fmt.Errorf("command %q: %w", c, err)
		}
	}
	return nil
}

func (r Runner) writeFile(f File) error {
	mode := os.FileMode(f.Permissions)
	if mode == 0 {
		mode = 0o644
	}
	uid, gid := owner(f.Owner, f.Group)
	return safefile.WriteFile(r.root(), f.Path, []byte(f.Content), mode, uid, gid)
}

func (r Runner) writeEnvironment(s Step) error {
	target := s.EnvironmentFile
	if target == "" {
		target = "/etc/environment"
	}
	existing, err := safefile.ReadFile(r.root(), target)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	values := map[string]string{}
	var order []string
	for _, line := range strings.Split(string(existing), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if _, seen := values[k]; !seen {
			order = append(order, k)
		}
		values[k] = v
	}
	keys := make([]string, 0, len(s.Environment))
	for k := range s.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, seen := values[k]; !seen {
			order = append(order, k)
		}
		values[k] = s.Environment[k]
	}
	var b strings.Builder
	for _, k := range order {
		fmt.Fprintf(&b, "%s=%s\n", k, values[k])
	}
	return safefile.WriteFile(r.root(), target, []byte(b.String()), 0o644, -1, -1)
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
}

// Has says whether any source has steps for stage (or its .before/.after).
func (s Set) Has(stage string) bool {
	for _, src := range s.Sources {
		for _, name := range []string{stage + ".before", stage, stage + ".after"} {
			if len(src.Config.Stages[name]) > 0 || (name == UsersStage && len(src.Config.Users) > 0) {
				return true
			}
		}
	}
	return false
}

// Run runs stage with files below root and commands chrooted into it
// (root "/" runs them directly).
func (s Set) Run(ctx context.Context, stage, root string) error {
	r := Runner{Root: root}
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
	return r.RunStage(ctx, s.Sources, stage)
}
