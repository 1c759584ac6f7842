package frontend

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/distribution/reference"
	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/bytesize"
	"github.com/kairos-io/kairos/internal/release"
)

// DefaultSpecName is the build spec file read when the caller names none.
const DefaultSpecName = "kairos.yaml"

// TODO: replace with ArgK3SVersion from options.go once it exists.

// Accepted values of the spec's enumerations.
var (
	KubernetesDistributions = []string{"k3s"}
	SquashfsCompressions    = []string{"gzip", "xz", "zstd"}
)

// MinDiskSize is the smallest raw disk image the spec accepts: the installed
// layout (EFI, OEM, recovery, state with two images, persistent) does not fit
// in less, which is why upstream never makes an image under 3 GiB.
const MinDiskSize int64 = 3 << 30

// cloudConfigHeader starts every cloud-config document; the agent ignores
// YAML files in /system/oem without it.
const cloudConfigHeader = "#cloud-config\n"

// Spec is a build spec file (kairos.yaml): what to build, as data, so that a
// build is reproducible from a file in the repository instead of a command
// line. Every field is what the file says, empty when the key is absent:
// defaults (variant core, model generic, ...) are applied after the build
// args are merged on top (see Args), so that a build arg can still replace
// any of them.
type Spec struct {
	// File is the name the spec was read from, used in every error message.
	File string

	// Base is the distro base image reference (key base).
	Base string
	// Flavor is the distro name; when empty it is detected from the base
	// image's /etc/os-release.
	Flavor string
	// FlavorRelease is the distro release (key flavor_release), e.g. bookworm.
	FlavorRelease string
	// Variant is core (no Kubernetes) or standard (k3s).
	Variant string
	// Version is the Kairos version, part of every artifact name.
	Version string
	// Model is the board or platform the image is for; the build defaults it
	// to generic.
	Model string
	// ImageRepo is image_repo: the repository the image is published to.
	ImageRepo string

	// Kubernetes is the distribution the standard variant ships.
	Kubernetes Kubernetes
	// Packages are installed on top of the flavor's, or removed.
	Packages Packages
	// Overlay is a directory of the build context copied over the image:
	// slash-separated, cleaned, relative to the build context.
	Overlay string
	// CloudConfig is baked into /system/oem.
	CloudConfig CloudConfig
	// Artifacts are the settings of the boot media.
	Artifacts Artifacts

	// pos holds where each key's value was read, by dotted key path
	// ("artifacts.disk.size", "packages.add[0]"), so errors found after
	// parsing can still point at the file.
	pos map[string]position
}

// Kubernetes is the spec's kubernetes mapping, for the standard variant.
type Kubernetes struct {
	// Distribution is one of KubernetesDistributions; empty means k3s.
	Distribution string
	// Version is the distribution's release, e.g. v1.31.2+k3s1.
	Version string
}

// Packages are distro packages installed on top of the flavor's own, and
// packages removed from the image.
type Packages struct {
	Add, Remove []string
}

// CloudConfig is the cloud-config baked into /system/oem: either a file of
// the build context or the config written inline in the spec. At most one of
// the two is set.
type CloudConfig struct {
	// Path is a file of the build context: slash-separated, cleaned,
	// relative to the build context.
	Path string
	// Inline is the config written in the spec, rendered as a document of
	// its own that starts with "#cloud-config\n".
	Inline []byte
}

// Artifacts are the settings of the boot media built from the image.
type Artifacts struct {
	Squashfs SquashfsSettings
	ISO      ISOSettings
	Disk     DiskSettings
}

// SquashfsSettings apply to the squashfs of the live media.
type SquashfsSettings struct {
	// Compression is one of SquashfsCompressions; empty takes the default.
	Compression string
}

// ISOSettings apply to the live/installer ISO.
type ISOSettings struct {
	// Name is the ISO file's base name without the .iso extension; empty
	// takes the standard kairos-<flavor>-... name.
	Name string
}

// DiskSettings apply to the raw disk image.
type DiskSettings struct {
	// Size is the disk image size in bytes, at least MinDiskSize; zero takes
	// the default.
	Size int64
}

// position is a 1-based line and column in the spec file.
type position struct{ line, col int }

// SpecError is an error about one place of a spec file. It carries the
// position apart from the message so a frontend can attach it to the error
// as a BuildKit source location (buildx then prints the offending line).
type SpecError struct {
	File string
	// Line and Column are 1-based; zero when unknown or when the error is
	// about a key absent from the file.
	Line, Column int
	// Key is the dotted key path, e.g. artifacts.squashfs.compression;
	// empty for the document as a whole.
	Key string
	Err error
}

func (e *SpecError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *SpecError) Unwrap() error { return e.Err }

// Errorf returns an error about a spec key found after parsing (an unknown
// flavor, a k3s version that does not exist...), prefixed with
// "<file>:<line>:<col>: <key>: " when the key is in the file and with
// "<file>: <key>: " when it is not. %w wraps as in fmt.Errorf. On a nil Spec
// (a build without a spec file) it is fmt.Errorf, so callers need not care.
func (s *Spec) Errorf(key string, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if s == nil {
		return err
	}
	p := s.pos[key]
	return &SpecError{File: s.File, Line: p.line, Column: p.col, Key: key, Err: err}
}

// specArgs ties the spec keys that have a build-arg equivalent to that arg.
var specArgs = []struct {
	arg, key string
	value    func(*Spec) string
}{
	{ArgBaseImage, "base", func(s *Spec) string { return s.Base }},
	{ArgFlavor, "flavor", func(s *Spec) string { return s.Flavor }},
	{ArgFlavorRelease, "flavor_release", func(s *Spec) string { return s.FlavorRelease }},
	{ArgVariant, "variant", func(s *Spec) string { return s.Variant }},
	{ArgVersion, "version", func(s *Spec) string { return s.Version }},
	{ArgModel, "model", func(s *Spec) string { return s.Model }},
	{ArgK3SVersion, "kubernetes.version", func(s *Spec) string { return s.Kubernetes.Version }},
	{ArgImageRepo, "image_repo", func(s *Spec) string { return s.ImageRepo }},
}

// Args returns the spec's values under their build-arg names, only for the
// keys the file sets. Build args given by the user are meant to be applied
// on top: spec first, then build args, so the command line wins.
func (s *Spec) Args() map[string]string {
	args := map[string]string{}
	if s == nil {
		return args
	}
	for _, a := range specArgs {
		if v := a.value(s); v != "" {
			args[a.arg] = v
		}
	}
	return args
}

// ArgKey returns the spec key a build arg comes from (FLAVOR -> flavor), or
// "" for an arg the spec cannot set. With Errorf it reports a bad value at
// its place in the file; the caller must check first that the user did not
// override the arg, or the blame lands on the wrong line.
func (s *Spec) ArgKey(arg string) string {
	for _, a := range specArgs {
		if a.arg == arg {
			return a.key
		}
	}
	return ""
}

// ParseSpec reads a spec file. data may be empty or only comments (an empty
// spec); a first line "# syntax=<frontend image>" is an ordinary comment.
// Every key and value is checked here except those that need data from
// elsewhere (flavor names, package names): the first problem is returned as
// a *SpecError with its line and column.
func ParseSpec(file string, data []byte) (*Spec, error) {
	s := &Spec{File: file, pos: map[string]position{}}
	doc, extra, err := decodeYAML(data)
	switch {
	case err != nil:
		return nil, s.syntaxError(data, err)
	case doc == nil:
		return s, nil
	case extra != nil:
		return nil, &SpecError{File: file, Line: extra.Line, Column: extra.Column,
			Err: errors.New("a second YAML document: a spec is a single document, remove the '---' separator")}
	}
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(root) {
		return s, nil // a lone "---" or "~": as empty as an empty file
	}
	p := &parser{s: s}
	if err := p.mapping("", root, p.topFields()); err != nil {
		return nil, err
	}
	if err := s.checkPackages(); err != nil {
		return nil, err
	}
	return s, nil
}

// decodeYAML reads the first YAML document of data (nil for an empty file)
// and the start of a second one (nil when there is none). err is yaml.v3's
// own syntax error.
func decodeYAML(data []byte) (doc, extra *yaml.Node, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	doc = &yaml.Node{}
	if err := dec.Decode(doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	extra = &yaml.Node{}
	if err := dec.Decode(extra); err != nil {
		if errors.Is(err, io.EOF) {
			return doc, nil, nil
		}
		return nil, nil, err
	}
	return doc, extra, nil
}

// yamlLineRe matches yaml.v3's syntax errors that carry a line (never a
// column).
var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError reports a yaml.v3 syntax error at the line of the problem.
func (s *Spec) syntaxError(data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if l := problemLine(data, err); l > 0 {
		line = l
	}
	return &SpecError{File: s.File, Line: line, Err: fmt.Errorf("invalid YAML: %s", msg)}
}

// problemLine finds the line of a syntax error, which yaml.v3 does not
// report: its "line N" is where the enclosing block starts when that is not
// the first line (the top-level mapping, for a badly indented key deep in
// the file), else where parsing stopped, 0-based for parser errors and
// 1-based for scanner errors, and is missing on the first line and for bad
// bytes (control characters, invalid UTF-8).
//
// The file cut after a line before the problem parses, or fails with
// another error; cut after the problem's line, it fails with the very same
// error (problem and yaml's line), so a binary search over the lines finds
// the problem's (for a bracket or quote left open, a line inside it). Each
// try parses a prefix again: past a budget of bytes parsed (specs are a
// few hundred bytes; yaml.v3 parses a few MB/s) the search gives up and
// returns 0.
func problemLine(data []byte, yamlErr error) int {
	var ends []int // ends[i] is the length of the file cut after line i+1
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	// Invariant: the cut after lo lines does not fail as the whole file
	// does (no lines: an empty file, which parses), the cut after hi does.
	lo, hi := 0, len(ends)
	budget := 1 << 20
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		cut := data[:ends[mid-1]]
		if budget -= len(cut); budget < 0 {
			return 0
		}
		if _, _, err := decodeYAML(cut); err != nil && err.Error() == yamlErr.Error() {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// checkPackages refuses a package both added and removed: which one wins
// would depend on the order of the build steps.
func (s *Spec) checkPackages() error {
	for i, name := range s.Packages.Remove {
		if slices.Contains(s.Packages.Add, name) {
			return s.Errorf(fmt.Sprintf("packages.remove[%d]", i), "%q is also in packages.add", name)
		}
	}
	return nil
}

// parser walks the YAML node tree, filling the spec and recording positions.
type parser struct{ s *Spec }

// field is one known key of a mapping and how to read its value.
type field struct {
	key  string
	read func(key string, n *yaml.Node) error
}

func (p *parser) topFields() []field {
	s := p.s
	return []field{
		{"base", p.str(&s.Base, checkImageRef)},
		{"flavor", p.str(&s.Flavor, nil)},
		{"flavor_release", p.str(&s.FlavorRelease, nil)},
		{"variant", p.str(&s.Variant, oneOf(Variants))},
		{"version", p.str(&s.Version, checkVersion)},
		{"model", p.str(&s.Model, checkName)},
		{"image_repo", p.str(&s.ImageRepo, checkRepository)},
		{"kubernetes", p.sub([]field{
			{"distribution", p.str(&s.Kubernetes.Distribution, oneOf(KubernetesDistributions))},
			{"version", p.str(&s.Kubernetes.Version, checkK8sVersion)},
		})},
		{"packages", p.sub([]field{
			{"add", p.strList(&s.Packages.Add, checkPackage)},
			{"remove", p.strList(&s.Packages.Remove, checkPackage)},
		})},
		{"overlay", p.str(&s.Overlay, contextDir)},
		{"cloud_config", p.cloudConfig},
		{"artifacts", p.sub([]field{
			{"squashfs", p.sub([]field{
				{"compression", p.str(&s.Artifacts.Squashfs.Compression, oneOf(SquashfsCompressions))},
			})},
			{"iso", p.sub([]field{
				{"name", p.str(&s.Artifacts.ISO.Name, isoName)},
			})},
			{"disk", p.sub([]field{
				{"size", p.diskSize},
			})},
		})},
	}
}

// errAt is an error at node n about key.
func (p *parser) errAt(n *yaml.Node, key string, format string, args ...any) error {
	return &SpecError{File: p.s.File, Line: n.Line, Column: n.Column, Key: key, Err: fmt.Errorf(format, args...)}
}

// mapping reads a mapping whose keys must all be in fields.
func (p *parser) mapping(path string, n *yaml.Node, fields []field) error {
	if n.Kind != yaml.MappingNode {
		if path == "" {
			return p.errAt(n, "", "a spec is a mapping of keys (base, flavor, ...), got %s", describe(n))
		}
		return p.errAt(n, path, "want a mapping, got %s", describe(n))
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			return p.errAt(k, path, "want a key name, got %s", describe(k))
		}
		if first, dup := seen[k.Value]; dup {
			return p.errAt(k, key, "duplicate key (first set at line %d)", first.Line)
		}
		seen[k.Value] = k
		fi := slices.IndexFunc(fields, func(f field) bool { return f.key == k.Value })
		if fi < 0 {
			return p.errAt(k, key, "unknown key (valid: %s)", fieldKeys(fields))
		}
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		// Errors about a scalar point at the value; about a mapping or a
		// list, at its key, which is where a reader looks.
		at := v
		if v.Kind != yaml.ScalarNode {
			at = k
		}
		p.s.pos[key] = position{at.Line, at.Column}
		if err := fields[fi].read(key, v); err != nil {
			return err
		}
	}
	return nil
}

// sub reads a nested mapping.
func (p *parser) sub(fields []field) func(string, *yaml.Node) error {
	return func(key string, n *yaml.Node) error { return p.mapping(key, n, fields) }
}

// str reads a non-empty string into dst, checked by check (nil: any string)
// which may also normalise it. Any scalar is accepted as its source text,
// so flavor_release: 3.20 stays "3.20" instead of becoming the float 3.2.
func (p *parser) str(dst *string, check func(string) (string, error)) func(string, *yaml.Node) error {
	return func(key string, n *yaml.Node) error {
		v, err := p.scalar(key, n)
		if err != nil {
			return err
		}
		if check != nil {
			if v, err = check(v); err != nil {
				return p.errAt(n, key, "%w", err)
			}
		}
		*dst = v
		return nil
	}
}

// strList reads a sequence of strings, each checked like str's.
func (p *parser) strList(dst *[]string, check func(string) (string, error)) func(string, *yaml.Node) error {
	return func(key string, n *yaml.Node) error {
		if n.Kind != yaml.SequenceNode {
			return p.errAt(n, key, "want a sequence, got %s", describe(n))
		}
		out := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			if item.Kind == yaml.AliasNode {
				item = item.Alias
			}
			ikey := fmt.Sprintf("%s[%d]", key, i)
			p.s.pos[ikey] = position{item.Line, item.Column}
			var v string
			if err := p.str(&v, check)(ikey, item); err != nil {
				return err
			}
			out = append(out, v)
		}
		*dst = out
		return nil
	}
}

// scalar returns a scalar's source text, refusing null and empty values:
// "flavor:" with nothing after it is more likely a mistake than a wish to
// leave the key unset, which removing the line says plainly.
func (p *parser) scalar(key string, n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return "", p.errAt(n, key, "want a string, got %s", describe(n))
	}
	if n.Value == "" {
		return "", p.errAt(n, key, "empty value; remove the key to leave it unset")
	}
	return n.Value, nil
}

// cloudConfig reads cloud_config: a string is a file of the build context,
// a mapping is the config itself.
func (p *parser) cloudConfig(key string, n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		v, err := p.scalar(key, n)
		if err != nil {
			return err
		}
		// A block scalar holding a config is a natural guess that would
		// otherwise fail later as a strange file name.
		if strings.Contains(v, "\n") {
			return p.errAt(n, key, "a string is the path of a file in the build context; to write the config inline, give its keys as a mapping under cloud_config")
		}
		if p.s.CloudConfig.Path, err = contextFile(v); err != nil {
			return p.errAt(n, key, "%w", err)
		}
		return nil
	case yaml.MappingNode:
		doc, err := renderInline(n)
		if err != nil {
			return p.errAt(n, key, "%w", err)
		}
		p.s.CloudConfig.Inline = doc
		return nil
	}
	return p.errAt(n, key, "want a file path or a mapping, got %s", describe(n))
}

// diskSize reads artifacts.disk.size: bytes, or a number with a unit.
func (p *parser) diskSize(key string, n *yaml.Node) error {
	v, err := p.scalar(key, n)
	if err != nil {
		return err
	}
	size, err := bytesize.Parse(v)
	if err != nil {
		return p.errAt(n, key, "%w", err)
	}
	if size < MinDiskSize {
		return p.errAt(n, key, "%q is below the minimum disk size of 3 GiB (3G, %d bytes): the installed partition layout needs at least that", v, MinDiskSize)
	}
	p.s.Artifacts.Disk.Size = size
	return nil
}

// renderInline turns an inline cloud_config mapping into a cloud-config
// document. Aliases are expanded first: their anchors may lie outside the
// mapping, where the rendered document could not refer to them.
func renderInline(n *yaml.Node) ([]byte, error) {
	budget := 100000 // nodes; bounds the expansion of nested aliases
	expanded, err := expandAliases(n, &budget)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(cloudConfigHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(expanded); err != nil {
		return nil, fmt.Errorf("rendering the inline cloud-config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("rendering the inline cloud-config: %w", err)
	}
	return b.Bytes(), nil
}

func expandAliases(n *yaml.Node, budget *int) (*yaml.Node, error) {
	if *budget--; *budget < 0 {
		return nil, errors.New("aliases expand to too large a config")
	}
	if n.Kind == yaml.AliasNode {
		return expandAliases(n.Alias, budget)
	}
	c := *n
	c.Anchor = ""
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, child := range n.Content {
		var err error
		if c.Content[i], err = expandAliases(child, budget); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// checkImageRef accepts what BuildKit will pull, so a typo such as an
// upper-case repository fails here with its line instead of at pull time.
func checkRepository(v string) (string, error) {
	if err := release.CheckRepository(v); err != nil {
		return "", fmt.Errorf("%q %w", v, err)
	}
	return v, nil
}

func checkImageRef(v string) (string, error) {
	if _, err := reference.ParseNormalizedNamed(v); err != nil {
		return "", fmt.Errorf("%q is not an image reference: %w", v, err)
	}
	return v, nil
}

func oneOf(valid []string) func(string) (string, error) {
	return func(v string) (string, error) {
		if !slices.Contains(valid, v) {
			return "", fmt.Errorf("%q is not valid (valid: %s)", v, strings.Join(valid, ", "))
		}
		return v, nil
	}
}

// checkVersion applies the VERSION build arg's rule: the version becomes
// part of file names and image tags.
func checkVersion(v string) (string, error) {
	if !versionRe.MatchString(v) {
		return "", fmt.Errorf("%q: must start with a letter or digit and hold only letters, digits, '.', '_' and '-' (it becomes part of file names and image tags)", v)
	}
	return v, nil
}

// checkName is the version rule applied to the model, which also ends up in
// artifact names.
func checkName(v string) (string, error) {
	if !versionRe.MatchString(v) {
		return "", fmt.Errorf("%q: must start with a letter or digit and hold only letters, digits, '.', '_' and '-' (it becomes part of file names)", v)
	}
	return v, nil
}

// k8sVersionRe is versionRe plus '+', which k3s releases carry (v1.31.2+k3s1).
var k8sVersionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_-]*$`)

func checkK8sVersion(v string) (string, error) {
	if !k8sVersionRe.MatchString(v) {
		return "", fmt.Errorf("%q: must look like v1.31.2+k3s1 (letters, digits, '.', '+', '_' and '-')", v)
	}
	return v, nil
}

// checkPackage refuses what a package manager would read as something else:
// names are passed shell-quoted, but a leading '-' is still an option.
func checkPackage(v string) (string, error) {
	if strings.HasPrefix(v, "-") {
		return "", fmt.Errorf("%q: a package name cannot start with '-'", v)
	}
	if strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "", fmt.Errorf("%q: one package per list item, without spaces", v)
	}
	return v, nil
}

// contextPath checks a path of the build context: relative, and not leaving
// the context through "..". It returns the cleaned path.
func contextPath(v string) (string, error) {
	if path.IsAbs(v) {
		return "", fmt.Errorf("%q is absolute; paths are relative to the build context", v)
	}
	c := path.Clean(v)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q leaves the build context", v)
	}
	return c, nil
}

// contextDir is contextPath for the overlay, which must not be the whole
// context: that would copy the spec itself (and .git) into the image root.
func contextDir(v string) (string, error) {
	c, err := contextPath(v)
	if err == nil && c == "." {
		err = fmt.Errorf("%q is the whole build context; put the overlay files in a directory of it, e.g. overlay/", v)
	}
	return c, err
}

func contextFile(v string) (string, error) {
	c, err := contextPath(v)
	if err == nil && c == "." {
		err = fmt.Errorf("%q is the build context, not a file", v)
	}
	return c, err
}

// isoNameRe keeps the ISO name a plain file name.
var isoNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// isoName accepts the name with or without ".iso" and returns it without.
func isoName(v string) (string, error) {
	name := strings.TrimSuffix(v, ".iso")
	if !isoNameRe.MatchString(name) {
		return "", fmt.Errorf("%q: must be a file name (no directory) starting with a letter or digit, holding only letters, digits, '.', '_', '+' and '-'", v)
	}
	return name, nil
}

// describe names a node's kind for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing (null)"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	}
	return "a string"
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func fieldKeys(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return strings.Join(keys, ", ")
}
