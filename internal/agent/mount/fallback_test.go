package mount

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/grubenv"
)

func TestFallbackOrder(t *testing.T) {
	for mode, want := range map[state.BootMode]string{state.ActiveBoot: "fallback", state.PassiveBoot: "recovery", state.RecoveryBoot: ""} {
		if got := FallbackEntry(mode); got != want {
			t.Errorf("%s: %q, want %q", mode, got, want)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "grubenv"), mustEnv(t, map[string]string{"extra_cmdline": "quiet"}), 0o644)
	if err := armFallbackIn(dir, "fallback"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "grubenv"))
	if vars, err := grubenv.Decode(data); err != nil || vars["next_entry"] != "fallback" || vars["extra_cmdline"] != "quiet" {
		t.Errorf("grubenv %v %v", vars, err)
	}
}

func mustEnv(t *testing.T, vars map[string]string) []byte {
	data, err := grubenv.Encode(vars)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
