package mount

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLiveBootWritesSentinelOnly(t *testing.T) {
	run := t.TempDir()
	if err := Run(Options{Cmdline: "root=live:CDLABEL=COS_LIVE rd.cos.disable", Sysroot: t.TempDir(), RunDir: run}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(run, "cos", "live_mode")); err != nil {
		t.Errorf("live_mode sentinel: %v", err)
	}
}

func TestUnknownBootIsAClearError(t *testing.T) {
	err := Run(Options{Cmdline: "root=/dev/sda1", RunDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "COS_ACTIVE") {
		t.Errorf("want an error saying what the mounter expects, got %v", err)
	}
}
