package cloudconfig

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Headers that mark a file as a Kairos cloud-config.
var Headers = []string{"#cloud-config", "#kairos-config", "#node-config"}

// Problem is one place of a file that does not fit the schema.
type Problem struct {
	File      string
	Line, Col int
	Msg       string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg) }

// Validate checks a cloud-config file: its header, YAML syntax, and every
// key and value shape against the contract's keys.
func Validate(file string, data []byte) []Problem {
	var probs []Problem
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if !slices.Contains(Headers, strings.TrimSpace(string(first))) {
		probs = append(probs, Problem{file, 1, 1, fmt.Sprintf("first line is not a cloud-config header (%s): the agent ignores this file", strings.Join(Headers, ", "))})
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 1
		fmt.Sscanf(err.Error(), "yaml: line %d:", &line)
		return append(probs, Problem{file, line, 1, "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")})
	}
	if len(doc.Content) == 0 {
		return probs
	}
	v := validator{file: file}
	v.check(doc.Content[0], schema, "")
	sort.SliceStable(v.probs, func(i, j int) bool { return v.probs[i].Line < v.probs[j].Line })
	return append(probs, v.probs...)
}

type validator struct {
	file  string
	probs []Problem
}

func (v *validator) add(n *yaml.Node, format string, args ...any) {
	v.probs = append(v.probs, Problem{v.file, n.Line, n.Column, fmt.Sprintf(format, args...)})
}

func (v *validator) check(n *yaml.Node, want *node, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	name := path
	if name == "" {
		name = "the document"
	}
	switch want.kind {
	case scalar:
		if n.Kind != yaml.ScalarNode {
			v.add(n, "%s: want a single value, got %s", name, describe(n))
		} else if len(want.values) > 0 && !slices.Contains(want.values, n.Value) {
			v.add(n, "%s: %q is not one of %s", name, n.Value, strings.Join(want.values, ", "))
		}
	case list:
		if n.Kind == yaml.ScalarNode && want.elem.kind == scalar {
			return // a single item where a list is expected: accepted
		}
		if n.Kind != yaml.SequenceNode {
			v.add(n, "%s: want a list, got %s", name, describe(n))
			return
		}
		for i, c := range n.Content {
			v.check(c, want.elem, fmt.Sprintf("%s[%d]", path, i))
		}
	case mapping, anyMap:
		if n.Kind != yaml.MappingNode {
			v.add(n, "%s: want a mapping, got %s", name, describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			child := join(path, k.Value)
			if k.Value == "<<" {
				continue // YAML merge key
			}
			if want.kind == anyMap {
				v.check(val, want.elem, child)
				continue
			}
			f, ok := want.fields[k.Value]
			if !ok {
				v.add(k, "unknown key %q%s (valid: %s)", k.Value, in(path), strings.Join(keys(want.fields), ", "))
				continue
			}
			v.check(val, f, child)
		}
	}
}

func in(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func keys(f map[string]*node) []string {
	k := make([]string, 0, len(f))
	for name := range f {
		k = append(k, name)
	}
	sort.Strings(k)
	return k
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}
