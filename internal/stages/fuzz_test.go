package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// FuzzConfig feeds arbitrary documents to `kairos-agent validate` and to
// what boot loads: a cloud-config comes from a URL, a CIDATA volume or a
// user, so neither may crash or hang on any input, and both must give the
// same verdict (boot refuses exactly the files validate finds errors in).
func FuzzConfig(f *testing.F) {
	for _, seed := range []string{
		"#cloud-config\nusers:\n  - name: u\n    passwd: p\n    groups: [admin]\n",
		"#cloud-config\nstages:\n  boot:\n    - name: x\n      files:\n        - path: /etc/x\n          content: y\n          permissions: 0644\n",
		"#cloud-config\nstages:\n  boot:\n    - commands: echo\n",
		"#cloud-config\na: &a [*a]\n",
		"#cloud-config\nx: &x {y: *x}\nstages: *x\n",
		"#cloud-config\nusers: {u: {passwd: $6$salt$hash}}\n",
		"#cloud-config\nstages:\n  boot: [{files: [{path: relative}]}]\n",
		"#cloud-config\n- a\n- b\n",
		"\xff\xfe",
		"#cloud-config\nk3s:\n  enabled: true\n  args: --x\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		diags := cloudconfig.Validate("fuzz.yaml", data)
		_, err := ParseSource("fuzz.yaml", data)
		if (diags.Err() != nil) != (err != nil) {
			t.Fatalf("validate says %v, boot says %v", diags.Err(), err)
		}
	})
}

// TestValidateAndBootAgree: the same documents through `validate` and
// through boot's loader give the same verdict, and a refusal names the
// same place: the corpus (all valid), and documents wrong in each way the
// language can be.
func TestValidateAndBootAgree(t *testing.T) {
	docs := map[string]string{}
	corpus, _ := filepath.Glob(filepath.Join(corpusDir, "*.yaml"))
	for _, p := range corpus {
		if strings.HasSuffix(p, ".expect.yaml") {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs[filepath.Base(p)] = string(data)
	}
	for i, bad := range []string{
		"users: {u: {uid: x}}",
		"stages: {boot: [{files: [{path: relative}]}]}",
		"stages: {boot: [{layout: {expand_partition: {size: 0}}}]}",
		"stages: {boot: [{datasource: {providers: [aws], path: oem}}]}",
		"stages: {boot: [{ensure_entities: [{entity: 'kind: printer'}]}]}",
		"growpart: {mode: gpart}",
		"p2p: {network_token: x}",
		"install: {partitions: {persistent: {fs: xfs}}}",
		"hostname: '{{ .Nope.x }}'",
		"stages: {boot: [{commands: {a: b}}]}",
		"a: [",
	} {
		docs[fmt.Sprintf("bad%02d.yaml", i)] = "#cloud-config\n" + bad + "\n"
	}
	for name, doc := range docs {
		diags := cloudconfig.Validate(name, []byte(doc))
		_, err := ParseSource(name, []byte(doc))
		verr := diags.Err()
		switch {
		case strings.HasPrefix(name, "bad") && verr == nil:
			t.Errorf("%s: validate accepts %q", name, doc)
		case !strings.HasPrefix(name, "bad") && verr != nil:
			t.Errorf("%s: validate refuses the corpus file: %v", name, verr)
		case (verr == nil) != (err == nil):
			t.Errorf("%s: validate says %v, boot says %v", name, verr, err)
		case verr != nil && !strings.Contains(err.Error(), verr.Error()):
			t.Errorf("%s: validate says %q, boot %q", name, verr, err)
		}
	}
}
