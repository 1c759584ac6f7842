package stages

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// corpusDir holds cloud-configs written from upstream's configuration and
// stage references, each with <name>.expect.yaml: what applying it must do.
const corpusDir = "../../tests/testdata/cloud-configs"

// expectation is a corpus case's .expect.yaml.
type expectation struct {
	// Stages are fired in this order.
	Stages    []string `yaml:"stages"`
	MachineID string   `yaml:"machine_id"`
	Files     map[string]struct {
		Content  *string `yaml:"content"`
		Contains string  `yaml:"contains"`
		Mode     string  `yaml:"mode"`
		UID      *int    `yaml:"uid"`
		GID      *int    `yaml:"gid"`
		Dir      bool    `yaml:"dir"`
	} `yaml:"files"`
	Absent []string `yaml:"absent"`
	// Lines: each string is part of some line of the file.
	Lines map[string][]string `yaml:"lines"`
	// Commands are the shell commands run, in order.
	Commands []string          `yaml:"commands"`
	Sysctl   map[string]string `yaml:"sysctl"`
	Modules  []string          `yaml:"modules"`
	// Layouts are the layout steps handed to the disks, as layoutString
	// prints them.
	Layouts []string `yaml:"layouts"`
}

// recorder stands for the shell and the kernel: a scratch root must not
// run commands on the machine the tests run on.
type recorder struct {
	commands []string
	sysctl   map[string]string
	modules  []string
	layouts  []string
}

// Apply stands for the node's disks (package repart has its own tests on
// loop devices).
func (r *recorder) Apply(l cloudconfig.Layout) error {
	r.layouts = append(r.layouts, layoutString(l))
	return nil
}

func (r *recorder) Grow(device string) error {
	r.layouts = append(r.layouts, "growpart "+device)
	return nil
}

func layoutString(l cloudconfig.Layout) string {
	s := fmt.Sprintf("label=%s path=%s", l.Device.Label, l.Device.Path)
	if l.Expand != nil {
		s += fmt.Sprintf(" expand=%d", l.Expand.Size)
	}
	for _, a := range l.AddPartitions {
		s += fmt.Sprintf(" add=%s/%s/%d/%s", a.FSLabel, a.PLabel, a.Size, a.FileSystem)
	}
	return s
}

func (r *recorder) exec(_ context.Context, command string) error {
	r.commands = append(r.commands, command)
	if command == "false" {
		return &exec.ExitError{}
	}
	return nil
}

func (r *recorder) Sysctl(k, v string) error { r.sysctl[k] = v; return nil }
func (r *recorder) LoadModule(_ context.Context, m string) error {
	r.modules = append(r.modules, m)
	return nil
}

// corpusRoot is a small Debian-like root: accounts, os-release, systemd.
func corpusRoot(t *testing.T, machineID string) string {
	root := t.TempDir()
	for p, content := range map[string]string{
		"/etc/passwd":        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"/etc/group":         "root:x:0:\nadm:x:4:\nnogroup:x:65534:\n",
		"/etc/shadow":        "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
		"/etc/gshadow":       "root:*::\nadm:*::\nnogroup:*::\n",
		"/etc/os-release":    "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\n",
		"/etc/machine-id":    machineID + "\n",
		"/usr/bin/systemctl": "",
	} {
		writeConfig(t, root, filepath.Dir(p), filepath.Base(p), content)
	}
	for _, d := range []string{"/root", "/home"} {
		mustDo(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	return root
}

// TestCorpus validates, parses and applies every corpus config against a
// scratch root and checks its effects: what operators copy from upstream's
// docs must validate cleanly and do what it says.
func TestCorpus(t *testing.T) {
	configs, _ := filepath.Glob(filepath.Join(corpusDir, "*.yaml"))
	configs = slices.DeleteFunc(configs, func(p string) bool { return strings.HasSuffix(p, ".expect.yaml") })
	if len(configs) == 0 {
		t.Fatal("no corpus")
	}
	srv := keyServer(t, map[string]string{"/corpus-alice.keys": testKey(t, "corpus-alice") + "\n"})
	for _, cfgPath := range configs {
		name := strings.TrimSuffix(filepath.Base(cfgPath), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(cfgPath)
			mustDo(t, err)
			var want expectation
			exp, err := os.ReadFile(strings.TrimSuffix(cfgPath, ".yaml") + ".expect.yaml")
			mustDo(t, err)
			mustDo(t, yaml.Unmarshal(exp, &want))
			if want.MachineID == "" {
				want.MachineID = "0123456789abcdef0123456789abcdef"
			}

			// Validated: no error, no warning.
			for _, d := range cloudconfig.Validate(cfgPath, data) {
				t.Errorf("validate: %s", d)
			}

			root := corpusRoot(t, want.MachineID)
			writeConfig(t, root, "/oem", "90_custom.yaml", string(data))
			sources, errs := Load(root, DefaultDirs)
			if len(errs) > 0 || len(sources) != 1 {
				t.Fatalf("load: %v (%d sources)", errs, len(sources))
			}
			rec := &recorder{sysctl: map[string]string{}}
			r := Runner{Root: root, Exec: rec.exec, Kernel: rec, Disks: rec, Keys: fetcher(srv),
				System: &SystemInfo{OSName: "Debian GNU/Linux", OSID: "debian", OSVersion: "12", Arch: "amd64", Hostname: "corpus-node", ServiceManager: "systemd"}}
			for _, st := range want.Stages {
				if err := r.RunStage(context.Background(), sources, st); err != nil {
					t.Errorf("stage %s: %v", st, err)
				}
			}
			checkEffects(t, root, want, rec)
		})
	}
}

func checkEffects(t *testing.T, root string, want expectation, rec *recorder) {
	t.Helper()
	for p, f := range want.Files {
		full := filepath.Join(root, p)
		st, err := os.Lstat(full)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if f.Dir != st.IsDir() {
			t.Errorf("%s: directory %v, want %v", p, st.IsDir(), f.Dir)
		}
		if f.Mode != "" && fmt.Sprintf("%04o", st.Mode().Perm()) != f.Mode {
			t.Errorf("%s: mode %04o, want %s", p, st.Mode().Perm(), f.Mode)
		}
		if !f.Dir {
			data, _ := os.ReadFile(full)
			if f.Content != nil && string(data) != *f.Content {
				t.Errorf("%s: content %q, want %q", p, data, *f.Content)
			}
			if f.Contains != "" && !strings.Contains(string(data), f.Contains) {
				t.Errorf("%s: %q does not hold %q", p, data, f.Contains)
			}
		}
		if f.UID != nil || f.GID != nil {
			uid, gid := ownerOf(t, full)
			if os.Geteuid() != 0 {
				t.Errorf("%s: ownership is checked as root only (the stages chown)", p)
			} else if (f.UID != nil && uid != *f.UID) || (f.GID != nil && gid != *f.GID) {
				t.Errorf("%s: owner %d:%d, want %v:%v", p, uid, gid, deref(f.UID), deref(f.GID))
			}
		}
	}
	for _, p := range want.Absent {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s exists, want absent", p)
		}
	}
	for p, parts := range want.Lines {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		lines := strings.Split(string(data), "\n")
		for _, part := range parts {
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, part) }) {
				t.Errorf("%s: no line holds %q:\n%s", p, part, data)
			}
		}
	}
	if want.Commands != nil && !slices.Equal(rec.commands, want.Commands) {
		t.Errorf("commands run:\n  %q\nwant\n  %q", rec.commands, want.Commands)
	}
	if want.Commands == nil && len(rec.commands) > 0 {
		t.Errorf("commands run: %q, want none", rec.commands)
	}
	for k, v := range want.Sysctl {
		if rec.sysctl[k] != v {
			t.Errorf("sysctl %s = %q, want %q", k, rec.sysctl[k], v)
		}
	}
	if !slices.Equal(rec.modules, want.Modules) {
		t.Errorf("modules loaded %q, want %q", rec.modules, want.Modules)
	}
	if !slices.Equal(rec.layouts, want.Layouts) {
		t.Errorf("layouts %q, want %q", rec.layouts, want.Layouts)
	}
}

func deref(p *int) any {
	if p == nil {
		return "any"
	}
	return *p
}

func ownerOf(t *testing.T, p string) (int, int) {
	t.Helper()
	var st unix.Stat_t
	mustDo(t, unix.Lstat(p, &st))
	return int(st.Uid), int(st.Gid)
}

// after moves a step behind the steps it names, across files; a name no
// step has is reported and ignored; a cycle is reported and its steps do
// not run.
func TestOrderAfter(t *testing.T) {
	step := func(name string, after ...string) cloudconfig.Step {
		s := cloudconfig.Step{Name: name}
		for _, a := range after {
			s.After = append(s.After, cloudconfig.After{Name: a})
		}
		return s
	}
	src := func(path, name string, steps ...cloudconfig.Step) Source {
		return Source{Path: path, Config: &cloudconfig.Config{Name: name, Stages: cloudconfig.Stages{"boot": steps}}}
	}
	names := func(ops []op) string {
		var n []string
		for _, o := range ops {
			n = append(n, o.name)
		}
		return strings.Join(n, " ")
	}
	// The system's file runs first, but its step "late" waits for the
	// user's "early" (a later file), and runs as soon as it has; the steps
	// after "late" do not wait.
	ops, errs := order([]Source{
		src("/system/oem/00.yaml", "sys", step("a"), step("late", "user.early"), step("b")),
		src("/oem/90.yaml", "user", step("early"), step("c")),
	}, "boot")
	if len(errs) > 0 || names(ops) != "sys.a sys.b user.early sys.late user.c" {
		t.Errorf("order %q, errors %v", names(ops), errs)
	}
	// A step naming one further down in its own file.
	ops, errs = order([]Source{src("/oem/x.yaml", "x", step("second", "x.first"), step("third"), step("first"))}, "boot")
	if len(errs) > 0 || names(ops) != "x.third x.first x.second" {
		t.Errorf("forward after: %q %v", names(ops), errs)
	}
	// Unnamed steps are named by index; a file without name: by its path.
	ops, _ = order([]Source{src("/oem/x.yaml", "", step(""), step(""))}, "boot")
	if names(ops) != "/oem/x.yaml.0 /oem/x.yaml.1" {
		t.Errorf("default names %q", names(ops))
	}
	ops, errs = order([]Source{src("/oem/x.yaml", "x", step("a", "x.nope"))}, "boot")
	if len(ops) != 1 || len(errs) != 1 || !strings.Contains(errs[0].Error(), `no step "x.nope"`) {
		t.Errorf("unknown after: %q %v", names(ops), errs)
	}
	ops, errs = order([]Source{src("/oem/x.yaml", "x", step("a", "x.b"), step("b", "x.a"), step("c"))}, "boot")
	if names(ops) != "x.c" || len(errs) != 2 || !strings.Contains(errs[0].Error(), "cycle") {
		t.Errorf("cycle: ran %q, errors %v", names(ops), errs)
	}
}
