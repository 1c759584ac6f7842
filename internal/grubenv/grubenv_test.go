package grubenv

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMatchesGrubEditenv checks our blocks against grub-editenv, the
// reference: it must read what we write, and we what it writes.
func TestMatchesGrubEditenv(t *testing.T) {
	editenv, err := exec.LookPath("grub-editenv")
	if err != nil {
		t.Fatalf("grub-editenv (package grub-common) is required: %v", err)
	}
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours")
	vars := map[string]string{"next_entry": "recovery", "saved_entry": "cos", "extra_cmdline": "quiet splash"}
	data, err := Encode(vars)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != Size {
		t.Fatalf("block of %d bytes", len(data))
	}
	if err := os.WriteFile(ours, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(editenv, ours, "list").CombinedOutput()
	if err != nil {
		t.Fatalf("grub-editenv list: %v\n%s", err, out)
	}
	if got, want := string(out), "extra_cmdline=quiet splash\nnext_entry=recovery\nsaved_entry=cos\n"; got != want {
		t.Errorf("grub-editenv lists %q, want %q", got, want)
	}

	theirs := filepath.Join(dir, "theirs")
	if out, err := exec.Command(editenv, theirs, "set", "next_entry=recovery", "saved_entry=cos", "extra_cmdline=quiet splash").CombinedOutput(); err != nil {
		t.Fatalf("grub-editenv set: %v\n%s", err, out)
	}
	ref, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, vars) {
		t.Errorf("Decode(grub-editenv's block) = %v, want %v", got, vars)
	}
	if len(ref) != Size {
		t.Errorf("grub-editenv wrote %d bytes, this package assumes %d", len(ref), Size)
	}
}

func TestErrors(t *testing.T) {
	if _, err := Encode(map[string]string{"a": strings.Repeat("x", Size)}); err == nil || !strings.Contains(err.Error(), "do not fit") {
		t.Errorf("oversized block: %v", err)
	}
	if _, err := Encode(map[string]string{"a=b": "c"}); err == nil {
		t.Error("name with = accepted")
	}
	if _, err := Decode([]byte("not an env block")); err == nil {
		t.Error("block without header accepted")
	}
}

func TestUpdate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "grubenv")
	if err := Update(p, map[string]string{"next_entry": "cos", "saved_entry": "recovery"}); err != nil {
		t.Fatal(err)
	}
	if err := Update(p, map[string]string{"saved_entry": "", "extra_cmdline": "quiet"}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	vars, err := Decode(data)
	if err != nil || len(data) != Size || len(vars) != 2 || vars["next_entry"] != "cos" || vars["extra_cmdline"] != "quiet" {
		t.Errorf("vars %v (%d bytes) %v", vars, len(data), err)
	}
	if out, err := exec.Command("grub-editenv", p, "list").Output(); err != nil || string(out) != "extra_cmdline=quiet\nnext_entry=cos\n" {
		t.Errorf("grub-editenv list: %q %v", out, err)
	}
}
