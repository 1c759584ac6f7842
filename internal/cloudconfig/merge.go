package cloudconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// SourceDirs are where a node's configs are, in the contract's order: the
// image's defaults (/system/oem), then the user's; a later file wins over
// an earlier one, and within a directory files are read sorted by name.
// The merged config and the stages read the same list, so a key is never
// read in one place and ignored in the other.
var SourceDirs = []string{ImageDir, "/run/initramfs/live", "/etc/kairos", "/usr/local/cloud-config", "/oem", DatasourceDir}

// ImageDir holds the image's own default configs.
const ImageDir = "/system/oem"

// Merged is the node's configuration: every cloud-config source deep-merged.
type Merged struct {
	// Values are the merged configs as rendered for this system (their
	// templates filled in): what the agent acts on.
	Values map[string]any
	// Raw are the merged configs before rendering, where a file's YAML
	// holds its templates whole: what an install copies to the installed
	// node, which renders them with its own data (its machine id) at
	// each boot. A file whose templates are not YAML by themselves is
	// taken rendered.
	Raw map[string]any
	// Files are the sources read, in order.
	Files []string
	// Skipped are files that could not be used, with the reason; boot goes
	// on without them.
	Skipped []error
}

// LoadNode is the node's configuration: its files (Load), then the keys
// its kernel command line carries (FromCmdline), which win.
func LoadNode(root, cmdline string) Merged {
	m := Load(root)
	if values := FromCmdline(cmdline); len(values) > 0 {
		if checked, err := checkCmdline(values); err != nil {
			m.Skipped = append(m.Skipped, err)
		} else {
			Merge(m.Values, checked)
			m.Files = append(m.Files, CmdlineFile)
			// Not in Raw: the command line is this boot's, not the
			// installed node's.
		}
	}
	return m
}

// Load reads and merges the cloud-configs below root ("/" on a node).
// Files without a cloud-config header are stage files, not configs, and
// are left out; a file with errors (Parse) is skipped and reported.
func Load(root string) Merged {
	m := Merged{Values: map[string]any{}, Raw: map[string]any{}}
	for _, dir := range SourceDirs {
		files, _ := filepath.Glob(filepath.Join(root, dir, "*.y*ml"))
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				m.Skipped = append(m.Skipped, err)
				continue
			}
			if !HasHeader(data) {
				continue
			}
			parsed, diags := Parse(f, data)
			if err := diags.Err(); err != nil {
				// As the stages do: a file with errors is not half-used.
				m.Skipped = append(m.Skipped, err)
				continue
			}
			Merge(m.Values, parsed.Tree)
			m.Files = append(m.Files, f)
			if dir == ImageDir {
				continue // the image's defaults are the image's: not copied
			}
			var raw map[string]any
			if yaml.Unmarshal(data, &raw) != nil {
				raw = parsed.Tree
			}
			Merge(m.Raw, raw)
		}
	}
	return m
}

// Merge folds src into dst: mappings merge key by key, stage lists are
// appended (every file's steps run; a stage given as one step is a list of
// it), anything else is replaced. What dst takes from src is a copy: two
// merged configs never share a mapping.
func Merge(dst, src map[string]any) {
	for k, v := range src {
		v = deepCopy(v)
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				if k == "stages" {
					for st, steps := range sm {
						dm[st] = append(asList(dm[st]), asList(steps)...)
					}
					continue
				}
				Merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// asList is a stage's steps: a list, or one step.
func asList(v any) []any {
	switch s := v.(type) {
	case nil:
		return nil
	case []any:
		return s
	}
	return []any{v}
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// Get returns the value at a dotted key ("k3s.enabled").
func (m Merged) Get(key string) (any, bool) {
	var cur any = m.Values
	for _, part := range strings.Split(key, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Config is the merged configuration as the language's types, read by the
// same decoder as every file: each file was checked when loaded, so a
// value that still does not fit (two files' halves merged) is left at its
// zero value rather than guessed.
func (m Merged) Config() *Config {
	c := &Config{}
	d := &decoder{file: "the merged config"}
	d.decode(toNode(m.Values), reflectOf(c), "")
	return c
}

// toNode is v (what YAML decodes to: maps, lists, scalars) as a YAML node,
// built directly: yaml.v3's Node.Encode goes through its own emitter and
// parser, which fail on some block scalars it writes itself.
func toNode(v any) *yaml.Node {
	switch x := v.(type) {
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, toNode(x[k]))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range x {
			n.Content = append(n.Content, toNode(e))
		}
		return n
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: x}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(x)}
	case float32, float64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: fmt.Sprint(x)}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(v)}
}
