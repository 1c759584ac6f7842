// Package stages runs the `stages:` of Kairos cloud-configs: named points in
// the node's life (rootfs, initramfs, boot, fs, network, reconcile, each with
// .before/.after, and the install/upgrade/reset hooks) with steps to execute.
package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// Config is the part of a cloud-config the stage engine reads.
type Config struct {
	Stages map[string][]Step `yaml:"stages"`
	// Users at the top level are (re)created in the initramfs stage of
	// every boot, as upstream: /etc is ephemeral.
	Users Users `yaml:"users"`
}

// UsersStage is where the top-level users are created.
const UsersStage = "initramfs"

// Step is one entry of a stage. Its parts run in the order of the fields.
type Step struct {
	Name        string            `yaml:"name"`
	If          string            `yaml:"if"`
	Directories []Directory       `yaml:"directories"`
	Files       []File            `yaml:"files"`
	Hostname    string            `yaml:"hostname"`
	Users       Users             `yaml:"users"`
	DNS         DNS               `yaml:"dns"`
	Environment map[string]string `yaml:"environment"`
	// EnvironmentFile is where Environment goes; /etc/environment by default.
	EnvironmentFile string    `yaml:"environment_file"`
	Systemctl       Systemctl `yaml:"systemctl"`
	Commands        []string  `yaml:"commands"`
}

// Directory is created with its parents.
type Directory struct {
	Path        string `yaml:"path"`
	Permissions uint32 `yaml:"permissions"`
	Owner       int    `yaml:"owner"`
	Group       int    `yaml:"group"`
}

// File is written whole.
type File struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Permissions uint32 `yaml:"permissions"`
	Owner       int    `yaml:"owner"`
	Group       int    `yaml:"group"`
}

// Systemctl lists unit operations.
type Systemctl struct {
	Enable  []string `yaml:"enable"`
	Disable []string `yaml:"disable"`
	Start   []string `yaml:"start"`
	Mask    []string `yaml:"mask"`
}

// Source is one parsed cloud-config file.
type Source struct {
	Path   string
	Config Config
}

// DefaultDirs are read in this order; within a directory files run sorted by
// name. Image defaults come first, user configs after, as upstream.
var DefaultDirs = []string{"/system/oem", "/oem", "/usr/local/cloud-config", "/run/initramfs/live", cloudconfig.DatasourceDir}

// Load reads every *.yaml/*.yml file in dirs (below root, for tests). A file
// that does not parse is reported with its name and line and skipped, so one bad file never
// stops the node from booting.
func Load(root string, dirs []string) ([]Source, []error) {
	var out []Source
	var errs []error
	for _, dir := range dirs {
		matches, _ := filepath.Glob(filepath.Join(root, dir, "*.y*ml"))
		sort.Strings(matches)
		for _, p := range matches {
			data, err := os.ReadFile(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cfg, err := Parse(data)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p, err))
				continue
			}
			out = append(out, Source{Path: p, Config: cfg})
		}
	}
	return out, errs
}

// Parse reads one cloud-config document. Keys other than stages are left to
// the config packages; yaml errors carry the line number.
func Parse(data []byte) (Config, error) {
	var cfg Config
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return cfg, err
	}
	for stage, steps := range cfg.Stages {
		for i, s := range steps {
			for _, f := range s.Files {
				if !strings.HasPrefix(f.Path, "/") {
					return cfg, fmt.Errorf("stages.%s[%d] (%s): file path %q is not absolute", stage, i, s.Name, f.Path)
				}
			}
		}
	}
	return cfg, nil
}
