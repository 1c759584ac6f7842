// Package stages runs the `stages:` of Kairos cloud-configs: named points in
// the node's life (rootfs, initramfs, boot, fs, network, reconcile, each with
// .before/.after, and the install/upgrade/reset hooks) with steps to execute.
package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// UsersStage is where the top-level users are created: every boot, as
// upstream, since /etc is ephemeral; before switch-root, so that the
// system starts with them.
const UsersStage = "initramfs"

// Source is one parsed config file whose stages run.
type Source struct {
	Path   string
	Header bool // a cloud-config; without, a stage file (name and stages only)
	Config *cloudconfig.Config
}

// DefaultDirs are read in this order; within a directory files run sorted by
// name. Image defaults come first, user configs after, as upstream.
var DefaultDirs = cloudconfig.SourceDirs

// Load reads every *.yaml/*.yml file in dirs (below root, for tests) with
// cloudconfig.Parse, the reader `kairos-agent validate` runs. A file with
// errors is reported (file:line:column) and skipped whole, so one bad file
// never stops the node from booting and no file runs half.
func Load(root string, dirs []string) ([]Source, []error) {
	var out []Source
	var errs []error
	td := cloudconfig.SystemData(root)
	for _, dir := range dirs {
		matches, _ := filepath.Glob(filepath.Join(root, dir, "*.y*ml"))
		sort.Strings(matches)
		for _, p := range matches {
			data, err := os.ReadFile(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			src, err := parseSource(p, data, &td)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, src)
		}
	}
	return out, errs
}

// ParseSource parses one file; its first error refuses it.
func ParseSource(path string, data []byte) (Source, error) {
	return parseSource(path, data, nil)
}

func parseSource(path string, data []byte, td *cloudconfig.TemplateData) (Source, error) {
	parsed, diags := cloudconfig.ParseWith(path, data, td)
	if err := diags.Err(); err != nil {
		return Source{}, fmt.Errorf("%w (the file is skipped; kairos-agent validate lists every problem)", err)
	}
	return Source{Path: path, Header: parsed.Header, Config: parsed.Config}, nil
}
