package cloudconfig

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Headers that mark a file as a Kairos cloud-config.
var Headers = []string{"#cloud-config", "#kairos-config", "#node-config"}

// headerLines is how far down a header may sit: comment lines (a license,
// a note) may come first, as upstream allows.
const headerLines = 10

// HasHeader says whether data is a cloud-config: one of its first lines,
// before any content, is a header. A file without one is a stage file
// (yip's format: its name and stages run, nothing else is read).
func HasHeader(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for i := 0; i < headerLines && sc.Scan(); i++ {
		line := strings.TrimSpace(sc.Text())
		if slices.Contains(Headers, line) {
			return true
		}
		if line != "" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return false
}

// File is one parsed config file.
type Parsed struct {
	Path string
	// Header is true for a cloud-config; a stage file has only its name
	// and stages read.
	Header bool
	Config *Config
	// Tree is the document as YAML, for merging the node's configuration.
	Tree map[string]any
}

// Parse reads one config file the way the node does, and is all that
// `validate` runs: what it returns without errors is exactly what boot
// applies. Errors (wrong types and values of known keys, YAML syntax) come
// with file:line:column; keys nothing reads are warnings.
//
// The file is first rendered as a template (Render) with the running
// system's data; ParseWith takes other data (another root, tests).
func Parse(file string, data []byte) (*Parsed, Diagnostics) {
	return ParseWith(file, data, nil)
}

// ParseWith is Parse rendering templates with td (nil: SystemData("/")).
func ParseWith(file string, data []byte, td *TemplateData) (*Parsed, Diagnostics) {
	p := &Parsed{Path: file, Header: HasHeader(data), Config: &Config{}}
	if bytes.Contains(data, []byte("{{")) {
		if td == nil {
			sys := SystemData("/")
			td = &sys
		}
		rendered, diag := Render(file, data, *td)
		if diag != nil {
			return p, Diagnostics{*diag}
		}
		data = rendered
	}
	notYAML := func(err error) (*Parsed, Diagnostics) {
		line := 1
		fmt.Sscanf(err.Error(), "yaml: line %d:", &line)
		return p, Diagnostics{{File: file, Line: line, Col: 1, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return notYAML(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		// A second document would be dropped unseen: refused instead.
		line := next.Line
		if err != nil {
			return notYAML(err)
		}
		return p, Diagnostics{{File: file, Line: line, Col: 1, Msg: "a second YAML document (after ---): a config file holds one"}}
	}
	d := &decoder{file: file}
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode && !isNull(root) {
			d.errorf(root, "the document: want a mapping of keys, got %s", describe(root))
			return p, d.diags
		}
		// yaml.v3's own decoding first: it refuses aliases that refer to
		// themselves and documents that expand far beyond their size, so
		// the language's decoder only ever walks a bounded tree.
		if err := doc.Decode(&p.Tree); err != nil {
			d.errorf(root, "%v", strings.TrimPrefix(err.Error(), "yaml: "))
			return p, d.diags
		}
		d.decode(root, reflect.ValueOf(p.Config).Elem(), "")
		checkHostname(d, root, "", p.Config.Hostname)
		checkEnvList(d, child(root, "env"), "env", p.Config.Env)
		if !p.Header {
			d.stageFileKeys(root)
		}
	}
	slices.SortStableFunc(d.diags, func(a, b Diagnostic) int { return a.Line - b.Line })
	return p, d.diags
}

// stageFileKeys warns about keys of a file without a header that only a
// cloud-config has: the node does not read them there.
func (d *decoder) stageFileKeys(root *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Value != "name" && k.Value != "stages" && d.known(k) {
			d.warnf(k, "%q is read only from a cloud-config: this file has no %s header (a stage file: only name and stages run)", k.Value, Headers[0])
		}
	}
}

func (d *decoder) known(k *yaml.Node) bool {
	_, ok := fieldsOf(reflect.TypeFor[Config]()).byName[k.Value]
	return ok
}

func reflectOf(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
