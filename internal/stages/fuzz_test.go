package stages

import (
	"testing"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// FuzzConfig feeds arbitrary documents to both readers of a cloud-config,
// the validator (`kairos-agent validate`) and the boot-time parser: a
// cloud-config comes from a URL, a CIDATA volume or a user, so neither may
// crash or hang on any input; each answers with problems or an error.
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
		cloudconfig.Validate("fuzz.yaml", data)
		Parse(data)
	})
}
