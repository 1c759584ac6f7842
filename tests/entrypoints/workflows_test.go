package entrypoints

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/rhysd/actionlint"
)

// The pipeline definitions pass actionlint (its Go API: the same checks
// as the actionlint command, without shellcheck, which the machine lacks).
func TestWorkflows(t *testing.T) {
	files, err := filepath.Glob("../../.github/workflows/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("workflows %v (%v): want ci.yaml and release.yaml", files, err)
	}
	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintFiles(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("%s", e)
	}
	if len(errs) > 0 {
		t.Logf("actionlint:\n%s", out.String())
	}
}
