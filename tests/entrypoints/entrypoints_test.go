// Package entrypoints checks that the ways users start a build agree with
// each other: the Earthfile (which earthly.sh reads for its targets) offers
// every frontend target and build arg.
package entrypoints

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/kairos-io/kairos/frontend"
)

func TestEarthfileMatchesFrontend(t *testing.T) {
	data, err := os.ReadFile("../../Earthfile")
	if err != nil {
		t.Fatal(err)
	}
	var targets, args []string
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):$`).FindAllStringSubmatch(string(data), -1) {
		targets = append(targets, m[1])
	}
	for _, m := range regexp.MustCompile(`(?m)^ARG --global ([A-Z0-9_]+)=`).FindAllStringSubmatch(string(data), -1) {
		args = append(args, m[1])
	}
	for _, tg := range frontend.TargetNames() {
		if !slices.Contains(targets, tg) {
			t.Errorf("Earthfile has no +%s target (frontend targets: %v)", tg, frontend.TargetNames())
		}
		if !regexp.MustCompile(`(?m)^# \+` + tg + `: `).Match(data) {
			t.Errorf("Earthfile target +%s has no \"# +%s: description\" line (earthly.sh --help prints it)", tg, tg)
		}
	}
	for _, extra := range []string{"test", "frontend"} {
		if !slices.Contains(targets, extra) {
			t.Errorf("Earthfile has no +%s target", extra)
		}
	}
	for _, a := range frontend.Args {
		if !slices.Contains(args, a.Name) {
			t.Errorf("Earthfile has no ARG --global %s", a.Name)
		}
	}
}
