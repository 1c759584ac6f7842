package cloudconfig

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// CmdlineFile names the kernel command line in messages and Merged.Files.
const CmdlineFile = "/proc/cmdline"

// FromCmdline is the config the kernel command line carries in upstream's
// dotted form: `install.device=/dev/vda k3s.enabled=true` is
// {install: {device: /dev/vda}, k3s: {enabled: "true"}}, and each
// `kairos.config=<key>=<value>` one more such pair. Only words whose first
// part is a key of the language count: the rest of the line (root=,
// console=, quiet) is the kernel's. Values are strings, as the decoder
// reads them into each key's type; quotes around a word are dropped.
func FromCmdline(cmdline string) map[string]any {
	known := fieldsOf(reflect.TypeFor[Config]()).byName
	out := map[string]any{}
	for _, w := range splitCmdline(cmdline) {
		if v, ok := strings.CutPrefix(w, "kairos.config="); ok {
			w = v
		}
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		parts := strings.Split(k, ".")
		if _, ok := known[parts[0]]; !ok || k == "config_url" || slices.Contains(parts, "") {
			continue // config_url is the datasource's, fetched into a file
		}
		cur := out
		for _, p := range parts[:len(parts)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
		cur[parts[len(parts)-1]] = v
	}
	return out
}

// splitCmdline splits the command line into words as the kernel does:
// spaces separate, double quotes group.
func splitCmdline(s string) []string {
	var words []string
	var cur strings.Builder
	quoted, has := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, has = !quoted, true
		case (r == ' ' || r == '\t' || r == '\n') && !quoted:
			if has {
				words = append(words, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteRune(r)
			has = true
		}
	}
	if has {
		words = append(words, cur.String())
	}
	return words
}

// checkCmdline decodes the command line's config as a file would be: its
// errors (a value of the wrong type) are reported and the part left out.
func checkCmdline(values map[string]any) (map[string]any, error) {
	d := &decoder{file: CmdlineFile}
	d.decode(toNode(values), reflectOf(&Config{}), "")
	if err := Diagnostics(d.diags).Err(); err != nil {
		return nil, fmt.Errorf("%w: the command line's config is not used", err)
	}
	return values, nil
}
