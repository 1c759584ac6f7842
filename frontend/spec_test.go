package frontend

import (
	"bufio"
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseSpecEmpty(t *testing.T) {
	for _, data := range []string{
		"",
		"# syntax=localhost:5000/kairos/frontend:dev\n",
		"# syntax=docker.io/kairos/frontend:1\n# nothing else yet\n\n",
		"---\n",
	} {
		s, err := ParseSpec("kairos.yaml", []byte(data))
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", data, err)
			continue
		}
		if len(s.Args()) != 0 || s.Overlay != "" || s.CloudConfig.Path != "" || s.CloudConfig.Inline != nil {
			t.Errorf("ParseSpec(%q) = %+v, want an empty spec", data, s)
		}
	}
}

func TestParseSpecFull(t *testing.T) {
	data := `# syntax=localhost:5000/kairos/frontend:dev
base: localhost:5000/ubuntu:24.04
flavor: ubuntu
flavor_release: 24.04
variant: standard
version: v1.2.0
model: rpi4
kubernetes:
  distribution: k3s
  version: v1.31.2+k3s1
packages:
  add: [htop, open-iscsi]
  remove:
    - snapd
overlay: ./files/../overlay/
cloud_config:
  users:
    - name: kairos
      groups: [admin]
artifacts:
  squashfs: {compression: zstd}
  iso: {name: lab.iso}
  disk: {size: 16G}
`
	s, err := ParseSpec("kairos.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	wantArgs := map[string]string{
		ArgBaseImage: "localhost:5000/ubuntu:24.04", ArgFlavor: "ubuntu",
		// Unquoted 24.04 is a float to YAML; the spec keeps the text.
		ArgFlavorRelease: "24.04", ArgVariant: "standard", ArgVersion: "v1.2.0",
		ArgModel: "rpi4", ArgK3SVersion: "v1.31.2+k3s1",
	}
	if got := s.Args(); !maps.Equal(got, wantArgs) {
		t.Errorf("Args() = %v, want %v", got, wantArgs)
	}
	if s.Kubernetes.Distribution != "k3s" ||
		!slices.Equal(s.Packages.Add, []string{"htop", "open-iscsi"}) || !slices.Equal(s.Packages.Remove, []string{"snapd"}) ||
		s.Overlay != "overlay" || s.CloudConfig.Path != "" ||
		s.Artifacts.Squashfs.Compression != "zstd" || s.Artifacts.ISO.Name != "lab" || s.Artifacts.Disk.Size != 16<<30 {
		t.Errorf("spec: %+v", s)
	}
	wantCC := "#cloud-config\nusers:\n  - name: kairos\n    groups: [admin]\n"
	if got := string(s.CloudConfig.Inline); got != wantCC {
		t.Errorf("inline cloud_config:\n%s\nwant:\n%s", got, wantCC)
	}
}

func TestParseSpecCloudConfig(t *testing.T) {
	s, err := ParseSpec("kairos.yaml", []byte("cloud_config: config/./oem.yaml\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.CloudConfig.Path != "config/oem.yaml" || s.CloudConfig.Inline != nil {
		t.Errorf("cloud_config path: %+v", s.CloudConfig)
	}
	// An alias whose anchor lies outside the inline config is expanded, or
	// the rendered document would refer to an anchor it does not hold.
	s, err = ParseSpec("kairos.yaml", []byte("model: &m rpi4\ncloud_config:\n  hostname: *m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(s.CloudConfig.Inline), "#cloud-config\nhostname: rpi4\n"; got != want {
		t.Errorf("inline with alias = %q, want %q", got, want)
	}
}

func TestParseSpecErrors(t *testing.T) {
	const topKeys = "valid: base, flavor, flavor_release, variant, version, model, image_repo, kubernetes, packages, overlay, cloud_config, artifacts"
	for _, tc := range []struct {
		name, data string
		prefix     string   // the whole "file:line:col: key: " start of the message
		contains   []string // more of the message
	}{
		{"unknown top-level key", "base: debian:bookworm\nflavour: debian\n",
			"kairos.yaml:2:1: flavour: unknown key", []string{topKeys}},
		{"unknown nested key", "artifacts:\n  squashfs:\n    compresion: xz\n",
			"kairos.yaml:3:5: artifacts.squashfs.compresion: unknown key", []string{"(valid: compression)"}},
		{"unknown key in kubernetes", "kubernetes:\n  distro: k3s\n",
			"kairos.yaml:2:3: kubernetes.distro: unknown key", []string{"(valid: distribution, version)"}},
		{"duplicate key", "flavor: debian\nvariant: core\nflavor: ubuntu\n",
			"kairos.yaml:3:1: flavor: duplicate key", []string{"first set at line 1"}},
		{"duplicate nested key", "packages:\n  add: [a]\n  add: [b]\n",
			"kairos.yaml:3:3: packages.add: duplicate key", nil},
		{"sequence for a string", "variant:\n  - core\n",
			"kairos.yaml:2:3: variant: want a string, got a sequence", nil},
		{"flow sequence for a string", "flavor: debian\nvariant: [core]\n",
			"kairos.yaml:2:10: variant: want a string, got a sequence", nil},
		{"null value", "flavor:\n",
			"kairos.yaml:1:8: flavor: want a string, got nothing (null)", nil},
		{"empty string", "flavor: \"\"\n",
			"kairos.yaml:1:9: flavor: empty value", nil},
		{"string for a mapping", "kubernetes: k3s\n",
			"kairos.yaml:1:13: kubernetes: want a mapping, got a string", nil},
		{"string for a list", "packages:\n  add: htop\n",
			"kairos.yaml:2:8: packages.add: want a sequence, got a string", nil},
		{"mapping in a list", "packages:\n  remove:\n    - vim\n    - {name: nano}\n",
			"kairos.yaml:4:7: packages.remove[1]: want a string, got a mapping", nil},
		{"package option", "packages:\n  add: [--allow-unauthenticated]\n",
			"kairos.yaml:2:9: packages.add[0]: ", []string{"cannot start with '-'"}},
		{"package with a space", "packages:\n  add: [\"vim nano\"]\n",
			"kairos.yaml:2:9: packages.add[0]: ", []string{"one package per list item"}},
		{"package added and removed", "packages:\n  add: [vim]\n  remove: [nano, vim]\n",
			"kairos.yaml:3:18: packages.remove[1]: ", []string{`"vim" is also in packages.add`}},
		{"top level not a mapping", "- base: debian\n",
			"kairos.yaml:1:1: a spec is a mapping of keys", []string{"got a sequence"}},
		{"bad variant", "variant: huge\n",
			"kairos.yaml:1:10: variant: ", []string{`"huge" is not valid (valid: core, standard)`}},
		{"bad distribution", "kubernetes:\n  distribution: k0s\n",
			"kairos.yaml:2:17: kubernetes.distribution: ", []string{`"k0s" is not valid (valid: k3s)`}},
		{"bad compression", "artifacts:\n  squashfs:\n    compression: lz4\n",
			"kairos.yaml:3:18: artifacts.squashfs.compression: ", []string{`"lz4" is not valid (valid: gzip, xz, zstd)`}},
		{"bad version", "version: v1/2\n",
			"kairos.yaml:1:10: version: ", []string{`"v1/2"`, "file names"}},
		{"bad kubernetes version", "kubernetes:\n  version: v1.31 k3s\n",
			"kairos.yaml:2:12: kubernetes.version: ", []string{"v1.31.2+k3s1"}},
		{"bad model", "model: rpi/4\n",
			"kairos.yaml:1:8: model: ", []string{`"rpi/4"`}},
		{"bad base", "base: Debian:bookworm\n",
			"kairos.yaml:1:7: base: ", []string{"not an image reference"}},
		{"bad size", "artifacts:\n  disk:\n    size: huge\n",
			"kairos.yaml:3:11: artifacts.disk.size: ", []string{"not a size", "16G"}},
		{"bad size unit", "artifacts:\n  disk:\n    size: 16X\n",
			"kairos.yaml:3:11: artifacts.disk.size: ", []string{`unknown unit "X"`, "KiB"}},
		{"ambiguous size unit", "artifacts:\n  disk:\n    size: 16GB\n",
			"kairos.yaml:3:11: artifacts.disk.size: ", []string{"ambiguous", "16G or 16GiB"}},
		{"disk too small", "artifacts:\n  disk:\n    size: 2G\n",
			"kairos.yaml:3:11: artifacts.disk.size: ", []string{"minimum disk size of 3 GiB"}},
		{"disk too small in bytes", "artifacts:\n  disk:\n    size: 1000000\n",
			"kairos.yaml:3:11: artifacts.disk.size: ", []string{"minimum disk size of 3 GiB"}},
		{"absolute overlay", "overlay: /etc\n",
			"kairos.yaml:1:10: overlay: ", []string{"absolute", "relative to the build context"}},
		{"overlay escaping", "overlay: files/../../etc\n",
			"kairos.yaml:1:10: overlay: ", []string{"leaves the build context"}},
		{"overlay is the context", "overlay: ./\n",
			"kairos.yaml:1:10: overlay: ", []string{"whole build context"}},
		{"absolute cloud_config", "cloud_config: /etc/oem.yaml\n",
			"kairos.yaml:1:15: cloud_config: ", []string{"absolute"}},
		{"cloud_config escaping", "cloud_config: ../oem.yaml\n",
			"kairos.yaml:1:15: cloud_config: ", []string{"leaves the build context"}},
		{"cloud_config as a text block", "cloud_config: |\n  #cloud-config\n  hostname: x\n",
			"kairos.yaml:1:15: cloud_config: ", []string{"as a mapping"}},
		{"cloud_config as a list", "cloud_config: [a]\n",
			"kairos.yaml:1:15: cloud_config: ", []string{"want a file path or a mapping, got a sequence"}},
		{"bad iso name", "artifacts:\n  iso:\n    name: out/kairos.iso\n",
			"kairos.yaml:3:11: artifacts.iso.name: ", []string{"no directory"}},
		{"yaml syntax", "flavor: debian\nvariant: [core\n",
			"kairos.yaml:2: invalid YAML: ", []string{"did not find expected ',' or ']'"}},
		// yaml.v3's own line is wrong for these (one line early, the
		// start of the top-level mapping, or none at all): the reported
		// line is where the problem is.
		{"yaml syntax after a comment", "# syntax=x\nflavor: debian\nvariant: [core\n",
			"kairos.yaml:3: invalid YAML: ", []string{"did not find expected ',' or ']'"}},
		{"badly indented key", "# syntax=x\nflavor: debian\nkubernetes:\n  version: v1.31.2+k3s1\n version: v1.30.0+k3s1\n",
			"kairos.yaml:5: invalid YAML: did not find expected key", nil},
		{"badly indented list item", "# syntax=x\npackages:\n  add:\n  - vim\n - nano\n",
			"kairos.yaml:5: invalid YAML: did not find expected key", nil},
		{"tab indentation", "# syntax=x\nflavor: debian\nkubernetes:\n\tversion: v1.31.2+k3s1\n",
			"kairos.yaml:4: invalid YAML: ", []string{"cannot start any token"}},
		{"yaml syntax on the first line", "flavor: @debian\n",
			"kairos.yaml:1: invalid YAML: ", []string{"cannot start any token"}},
		{"control character", "# syntax=x\nflavor: \"deb\x01ian\"\n",
			"kairos.yaml:2: invalid YAML: control characters are not allowed", nil},
		{"unknown alias", "# syntax=x\nflavor: debian\nmodel: *board\n",
			"kairos.yaml:3: invalid YAML: unknown anchor 'board' referenced", nil},
		{"two documents", "flavor: debian\n---\nflavor: ubuntu\n",
			"kairos.yaml:2:1: ", []string{"second YAML document"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSpec("kairos.yaml", []byte(tc.data))
			if err == nil {
				t.Fatalf("no error for:\n%s", tc.data)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.prefix) {
				t.Errorf("error %q\nwant prefix %q", msg, tc.prefix)
			}
			for _, c := range tc.contains {
				if !strings.Contains(msg, c) {
					t.Errorf("error %q\nwant it to contain %q", msg, c)
				}
			}
			var se *SpecError
			if !errors.As(err, &se) {
				t.Errorf("error %T is not a *SpecError", err)
			}
		})
	}
}

func TestSpecErrorf(t *testing.T) {
	s, err := ParseSpec("kairos.yaml", []byte("# syntax=kairos/frontend\nbase: debian:bookworm\nflavor: gentoo\npackages:\n  add: [vim]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ key, want string }{
		{"flavor", `kairos.yaml:3:9: flavor: unknown flavor "gentoo"`},
		// A mapping or list is pointed at by its key.
		{"packages.add", `kairos.yaml:5:3: packages.add: unknown flavor "gentoo"`},
		{"packages.add[0]", `kairos.yaml:5:9: packages.add[0]: unknown flavor "gentoo"`},
		{"variant", `kairos.yaml: variant: unknown flavor "gentoo"`},
	} {
		if got := s.Errorf(tc.key, "unknown flavor %q", s.Flavor).Error(); got != tc.want {
			t.Errorf("Errorf(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	cause := errors.New("cause")
	if err := s.Errorf("flavor", "lookup: %w", cause); !errors.Is(err, cause) {
		t.Errorf("Errorf does not wrap %%w: %v", err)
	}
	var none *Spec
	if got := none.Errorf("flavor", "unknown flavor %q", "gentoo").Error(); got != `unknown flavor "gentoo"` {
		t.Errorf("nil Spec Errorf = %q", got)
	}
	if len(none.Args()) != 0 {
		t.Error("nil Spec has args")
	}
}

func TestSpecArgKey(t *testing.T) {
	s := &Spec{}
	for arg, key := range map[string]string{
		ArgBaseImage: "base", ArgFlavor: "flavor", ArgFlavorRelease: "flavor_release",
		ArgVariant: "variant", ArgVersion: "version", ArgModel: "model",
		ArgK3SVersion: "kubernetes.version", "TARGETARCH": "",
	} {
		if got := s.ArgKey(arg); got != key {
			t.Errorf("ArgKey(%s) = %q, want %q", arg, got, key)
		}
	}
	// Every key named by ArgKey is one the parser records, so Errorf on it
	// finds the position.
	data := "base: debian:bookworm\nflavor: debian\nflavor_release: bookworm\nvariant: core\nversion: v1\nmodel: generic\nkubernetes:\n  version: v1.31.2+k3s1\n"
	s, err := ParseSpec("kairos.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	for arg := range s.Args() {
		key := s.ArgKey(arg)
		if msg := s.Errorf(key, "x").Error(); strings.HasPrefix(msg, "kairos.yaml: ") {
			t.Errorf("Errorf(ArgKey(%s)) has no position: %q", arg, msg)
		}
	}
}

// TestExampleSpecs keeps the example specs in tests/specs valid.
func TestExampleSpecs(t *testing.T) {
	files, err := filepath.Glob("../tests/specs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example specs in tests/specs")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseSpec(filepath.Base(f), data); err != nil {
			t.Error(err)
		}
	}
}

// TestREADMESpecs parses every ```yaml block of the README whose first line
// is "# kairos.yaml", so the documented specs stay valid.
func TestREADMESpecs(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeSpecBlocks(data)
	t.Logf("%d kairos.yaml blocks in README.md", len(blocks))
	for _, b := range blocks {
		if _, err := ParseSpec(DefaultSpecName, []byte(b.text)); err != nil {
			t.Errorf("README.md:%d: the kairos.yaml block does not parse: %v", b.line, err)
		}
	}
}

func TestREADMESpecBlocks(t *testing.T) {
	md := "text\n```yaml\n# kairos.yaml\nflavor: debian\n```\n```yaml\nother: 1\n```\n```sh\n# kairos.yaml\n```\n  ```yaml\n  # kairos.yaml\n  base: alpine:3.20\n  ```\n```yaml\n# syntax=x/y\n# kairos.yaml\nflavor: debian\n```\n"
	got := readmeSpecBlocks([]byte(md))
	want := []specBlock{{3, "# kairos.yaml\nflavor: debian\n"}, {13, "# kairos.yaml\nbase: alpine:3.20\n"}, {17, "# syntax=x/y\n# kairos.yaml\nflavor: debian\n"}}
	if !slices.Equal(got, want) {
		t.Errorf("readmeSpecBlocks = %+v, want %+v", got, want)
	}
}

// specBlock is a fenced spec in Markdown; line is where its text starts.
type specBlock struct {
	line int
	text string
}

// readmeSpecBlocks returns the ```yaml blocks whose first line is
// "# kairos.yaml", or whose first line is "# syntax=..." (which must come
// first in a real spec) and second "# kairos.yaml". Blocks indented in lists
// lose the fence's indentation.
func readmeSpecBlocks(md []byte) []specBlock {
	var (
		blocks []specBlock
		cur    *specBlock
		indent string
		lineNo int
	)
	sc := bufio.NewScanner(bytes.NewReader(md))
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```yaml":
			cur = &specBlock{line: lineNo + 1}
			indent = line[:strings.Index(line, "```")]
		case cur != nil && trimmed == "```":
			if isSpecBlock(cur.text) {
				blocks = append(blocks, *cur)
			}
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		}
	}
	return blocks
}

func isSpecBlock(text string) bool {
	first, rest, _ := strings.Cut(text, "\n")
	second, _, _ := strings.Cut(rest, "\n")
	first, second = strings.TrimSpace(first), strings.TrimSpace(second)
	return first == "# kairos.yaml" || (strings.HasPrefix(first, "# syntax=") && second == "# kairos.yaml")
}
