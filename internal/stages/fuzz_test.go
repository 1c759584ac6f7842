package stages

import (
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
