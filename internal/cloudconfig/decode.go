package cloudconfig

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Diagnostic is one finding about a config file: an error (a value the
// node cannot use: the file is refused) or a warning (a key nothing here
// reads, e.g. a bundle's or provider's own; the file is used).
type Diagnostic struct {
	File      string
	Line, Col int
	Msg       string
	Warning   bool
}

func (d Diagnostic) String() string {
	level := "error"
	if d.Warning {
		level = "warning"
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", d.File, d.Line, d.Col, level, d.Msg)
}

// Diagnostics are a file's findings, in document order.
type Diagnostics []Diagnostic

// Err is the first error (not warning) as an error, or nil.
func (ds Diagnostics) Err() error {
	for _, d := range ds {
		if !d.Warning {
			return fmt.Errorf("%s", d)
		}
	}
	return nil
}

// Errors counts the errors; with strict, warnings count too.
func (ds Diagnostics) Errors(strict bool) int {
	n := 0
	for _, d := range ds {
		if !d.Warning || strict {
			n++
		}
	}
	return n
}

// decoder fills Go values from YAML nodes the way the config language
// reads them: the one reader behind `validate` and boot, so that what
// validates is exactly what runs. Its rules, beyond plain YAML:
//
//   - a scalar where a list is expected is a list of that one item
//     (`groups: admin`, `commands: "echo hi"`, `args: --x`);
//   - a string field takes any scalar verbatim (`passwd: 1234`);
//   - booleans are true/false/yes/no/on/off in any case, also quoted, as
//     the kernel command line and old configs write them;
//   - integers take Go's prefixes, and a leading 0 is octal, quoted or
//     not (`permissions: 0644`, `permissions: "0600"`);
//   - unknown keys are warnings, not errors: bundles and providers read
//     keys of their own;
//   - a field tagged `alias:"x"` also answers to x (upstream documents
//     both `no_format` and `no-format`);
//   - a type with a decodeYAML method decodes itself.
type decoder struct {
	file  string
	diags Diagnostics
}

// yamlDecoder is implemented by config types with a shape of their own.
type yamlDecoder interface {
	decodeYAML(d *decoder, n *yaml.Node, path string)
}

var yamlDecoderType = reflect.TypeFor[yamlDecoder]()

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.diags = append(d.diags, Diagnostic{File: d.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) warnf(n *yaml.Node, format string, args ...any) {
	d.diags = append(d.diags, Diagnostic{File: d.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...), Warning: true})
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// decode fills v (addressable) from n; path names the place for messages
// ("stages.boot[0].files[1].permissions").
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		d.decode(n.Content[0], v, path)
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(yamlDecoderType) {
		v.Addr().Interface().(yamlDecoder).decodeYAML(d, n, path)
		return
	}
	if isNull(n) {
		return // `key:` with nothing: the zero value, as YAML means it
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.errorf(n, "%s: %v", name(path), err)
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "%s: want a single value, got %s", name(path), describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, ok := parseBool(n)
		if !ok {
			d.errorf(n, "%s: want true or false, got %s", name(path), describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "%s: want a number, got %s", name(path), describe(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(n.Value), "_", ""), 0, v.Type().Bits())
		if err != nil {
			d.errorf(n, "%s: want a whole number, got %s", name(path), describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "%s: want a number, got %s", name(path), describe(n))
			return
		}
		i, err := strconv.ParseUint(strings.ReplaceAll(strings.TrimSpace(n.Value), "_", ""), 0, v.Type().Bits())
		if err != nil {
			d.errorf(n, "%s: want a whole number, at least 0, got %s", name(path), describe(n))
			return
		}
		v.SetUint(i)
	case reflect.Slice:
		items := n.Content
		switch n.Kind {
		case yaml.SequenceNode:
		case yaml.ScalarNode:
			items = []*yaml.Node{n} // one item where a list is expected
		default:
			if v.Type().Elem().Kind() == reflect.Struct || v.Type().Elem().Kind() == reflect.Pointer {
				items = []*yaml.Node{n} // one mapping where a list of them is expected
			} else {
				d.errorf(n, "%s: want a list, got %s", name(path), describe(n))
				return
			}
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, c := range items {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s: want a mapping, got %s", name(path), describe(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		d.eachKey(n, func(k, val *yaml.Node) {
			key := reflect.New(v.Type().Key()).Elem()
			d.decode(k, key, path)
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, join(path, k.Value))
			v.SetMapIndex(key, e)
		})
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s: want a mapping, got %s", name(path), describe(n))
			return
		}
		fields := fieldsOf(v.Type())
		d.eachKey(n, func(k, val *yaml.Node) {
			idx, ok := fields.byName[k.Value]
			if !ok {
				if near := closest(k.Value, fields.names); near != "" {
					d.warnf(k, "unknown key %q%s: nothing reads it (did you mean %q?)", k.Value, in(path), near)
				} else {
					d.warnf(k, "unknown key %q%s: nothing reads it (known: %s)", k.Value, in(path), strings.Join(fields.names, ", "))
				}
				return
			}
			if why, ok := fields.unsupported[k.Value]; ok {
				// Known upstream, not carried out here: refused rather
				// than ignored, so the node never boots without it
				// unnoticed.
				msg := join(path, k.Value) + ": not supported by this agent yet"
				if why != "" {
					msg += " (" + why + ")"
				}
				d.errorf(k, "%s", msg)
				return
			}
			d.decode(val, v.FieldByIndex(idx), join(path, k.Value))
		})
	default:
		d.errorf(n, "%s: cannot be read into %s", name(path), v.Type())
	}
}

// eachKey calls fn for each key of a mapping, with YAML merge keys
// (`<<: *defaults`) expanded as YAML means them: a key the mapping has
// itself wins over a merged one, and an earlier merged mapping over a
// later one; each key is given once. (yaml.v3 has already refused merges
// that refer to themselves: Parse decodes the tree with it first.)
func (d *decoder) eachKey(n *yaml.Node, fn func(k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Value != "<<" || k.Tag != "!!merge" {
			seen[k.Value] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Value != "<<" || k.Tag != "!!merge" {
			continue
		}
		for val.Kind == yaml.AliasNode {
			val = val.Alias
		}
		merged := []*yaml.Node{val}
		if val.Kind == yaml.SequenceNode {
			merged = val.Content
		}
		for _, m := range merged {
			for m.Kind == yaml.AliasNode {
				m = m.Alias
			}
			if m.Kind != yaml.MappingNode {
				d.errorf(m, "a merge key (<<) takes a mapping, got %s", describe(m))
				continue
			}
			for j := 0; j+1 < len(m.Content); j += 2 {
				if mk := m.Content[j]; !seen[mk.Value] && (mk.Value != "<<" || mk.Tag != "!!merge") {
					seen[mk.Value] = true
					fn(mk, m.Content[j+1])
				}
			}
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Value == "<<" && k.Tag == "!!merge" {
			continue
		}
		fn(k, val)
	}
}

func parseBool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(n.Value)) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	return false, false
}

type structFields struct {
	byName      map[string][]int  // yaml name (and aliases) -> field index path
	names       []string          // the yaml names, sorted, for messages
	unsupported map[string]string // yaml name -> why it cannot be used yet
}

var fieldCache sync.Map // reflect.Type -> *structFields

// fieldsOf maps a struct's yaml names to its fields, inline structs
// flattened.
func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{byName: map[string][]int{}, unsupported: map[string]string{}}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			tag, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			idx := append(slices.Clone(prefix), i)
			if opts == "inline" {
				walk(sf.Type, idx)
				continue
			}
			if tag == "-" || tag == "" {
				continue
			}
			f.byName[tag] = idx
			f.names = append(f.names, tag)
			why, unsupported := sf.Tag.Lookup("unsupported")
			for _, a := range append(strings.Split(sf.Tag.Get("alias"), ","), tag) {
				if a != "" {
					f.byName[a] = idx
					if unsupported {
						f.unsupported[a] = why
					}
				}
			}
		}
	}
	walk(t, nil)
	slices.Sort(f.names)
	fieldCache.Store(t, f)
	return f
}

func name(path string) string {
	if path == "" {
		return "the document"
	}
	return path
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

// child is the value node of key in the mapping n, or n itself: where a
// check made after decoding points.
func child(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return n
}

// closest is the name within edit distance 2 of s (a typo), or "".
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
