package frontend

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/errdefs"
	"gopkg.in/yaml.v3"
)

// FuzzSpec feeds arbitrary files to the spec parser: kairos.yaml comes from
// the build context, so any input must give a spec or a *SpecError, never
// a panic or a hang, and what the frontend derives from either must hold
// up too (the error's source location, the rendered inline cloud-config).
func FuzzSpec(f *testing.F) {
	// The documented specs: the examples and the README's blocks.
	examples, err := filepath.Glob("../tests/specs/*.yaml")
	if err != nil || len(examples) == 0 {
		f.Fatalf("no example specs in tests/specs (%v)", err)
	}
	for _, name := range examples {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range readmeSpecBlocks(readme) {
		f.Add([]byte(b.text))
	}
	for _, seed := range []string{
		"",
		"---\n",
		"~\n",
		// Anchors and aliases, nested and recursive, inside and outside
		// the inline cloud-config.
		"model: &m rpi4\ncloud_config:\n  hostname: *m\n",
		"cloud_config: &c {a: *c}\n",
		"cloud_config:\n  a: &a [x, x, x, x, x, x, x, x, x]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n  d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
		"packages:\n  add: &p [vim]\n  remove: *p\n",
		"base: &b\nflavor: *b\n",
		"kubernetes: &k\n  version: v1.31.2+k3s1\nartifacts: *k\n",
		"cloud_config:\n  <<: {hostname: x}\n",
		"flavor: *nowhere\n",
		// Wrong types, tags and keys.
		"variant: [core]\nversion: {v: 1}\n",
		"packages:\n  add: [1, true, null, ~, 2.5, [x], {y: z}]\n",
		"flavor: !!binary ZGViaWFu\nversion: !!int 12\n",
		"? [complex, key]\n: value\n",
		"cloud_config: !!str 12\n",
		"- base: debian\n",
		"base: debian\n---\nflavor: debian\n",
		// Huge and odd numbers.
		"artifacts:\n  disk:\n    size: 99999999999999999999999999999999G\n",
		"artifacts:\n  disk:\n    size: 9223372036854775807\n",
		"artifacts:\n  disk:\n    size: 0x10G\n",
		"artifacts:\n  disk:\n    size: 1e400\n",
		"flavor_release: .inf\nversion: -.NaN\n",
		// Tabs, odd line breaks, bytes.
		"flavor: debian\n\tvariant: core\n",
		"packages:\n\tadd: [vim]\n",
		"flavor:\tdebian\r\nvariant:\tcore\r\n",
		"flavor: debian\rvariant: [core\r",
		"\ufeffflavor: debian\n",
		"flavor: \"deb\u2028ian\"\nvariant: huge\n",
		"flavor: \"\x00\"\n",
		"\xff\xfe",
		// Deep nesting and unterminated constructs.
		strings.Repeat("[", 200) + "\n",
		"cloud_config:\n" + strings.Repeat("  ", 1) + strings.Repeat("a: {", 100) + "\n",
		"flavor: 'debian\nvariant: core\n",
		"cloud_config: |\n  #cloud-config\n  hostname: x\n",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec(DefaultSpecName, data)
		if (s == nil) == (err == nil) {
			t.Fatalf("ParseSpec = %v, %v: want a spec or an error", s, err)
		}
		if err != nil {
			checkSpecError(t, data, err)
			return
		}
		// Everything the build glue calls on a spec.
		for arg := range s.Args() {
			_ = s.Errorf(s.ArgKey(arg), "x").Error()
		}
		for key := range s.pos {
			var se *SpecError
			if !errors.As(s.Errorf(key, "x"), &se) || se.Line <= 0 {
				t.Errorf("Errorf(%q) has no line though the key was read", key)
			}
		}
		// The inline cloud-config is baked into the image and read at
		// boot: it must be a cloud-config document that parses.
		if cc := s.CloudConfig.Inline; cc != nil {
			if !bytes.HasPrefix(cc, []byte(cloudConfigHeader)) {
				t.Errorf("inline cloud-config lacks the header:\n%s", cc)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(cc, &doc); err != nil {
				t.Errorf("inline cloud-config does not parse (%v):\n%s", err, cc)
			}
		}
	})
}

// checkSpecError checks an error of ParseSpec: a *SpecError about the file,
// and, when it has a line, one that a BuildKit client shows.
func checkSpecError(t *testing.T, data []byte, err error) {
	t.Helper()
	var se *SpecError
	if !errors.As(err, &se) {
		t.Fatalf("error %T %q is not a *SpecError", err, err)
	}
	if se.File != DefaultSpecName || !strings.HasPrefix(err.Error(), DefaultSpecName+":") {
		t.Errorf("error %q does not name the file", err)
	}
	if se.Line < 0 || se.Column < 0 || (se.Line == 0 && se.Column != 0) {
		t.Errorf("error %q at line %d column %d", err, se.Line, se.Column)
	}
	if se.Line == 0 {
		return
	}
	// YAML also breaks lines at a lone CR, NEL, LS and PS; BuildKit
	// clients split the file at LF only, so only files without those are
	// held to it.
	if bytes.ContainsAny(data, "\r\u0085\u2028\u2029") {
		return
	}
	if lines := bytes.Count(data, []byte("\n")) + 1; se.Line > lines {
		t.Errorf("error %q on line %d of a file of %d lines", err, se.Line, lines)
	}
	sm := llb.NewSourceMap(nil, DefaultSpecName, specLanguage, data)
	srcs := errdefs.Sources(withSpecSource(err, sm))
	if len(srcs) != 1 {
		t.Fatalf("error %q with a line gets %d sources, want 1", err, len(srcs))
	}
	var out bytes.Buffer
	if err := srcs[0].Print(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), ">>>") {
		t.Errorf("a client would show no line of the spec for %q:\n%s", err, out.String())
	}
}
