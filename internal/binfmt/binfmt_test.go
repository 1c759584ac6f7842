package binfmt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Debian's qemu-user-static entry, as in /usr/lib/binfmt.d/qemu-aarch64.conf.
const debianAarch64 = `:qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:%s:OPF`

// Its status file once registered.
const aarch64Status = `enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POCF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
`

// fakeSystem is binfmt_misc as a directory: writing "register" makes an
// entry the way the kernel would for the lines the tests use.
func fakeSystem(t *testing.T, mounted bool) (System, *int) {
	t.Helper()
	root := t.TempDir()
	s := System{Dir: filepath.Join(root, "binfmt_misc"), ConfDirs: []string{filepath.Join(root, "binfmt.d")}}
	mounts := 0
	must(t, os.MkdirAll(s.Dir, 0o755))
	must(t, os.MkdirAll(s.ConfDirs[0], 0o755))
	s.Mount = func(dir string) error {
		mounts++
		must(t, os.WriteFile(filepath.Join(dir, "status"), []byte("enabled\n"), 0o644))
		return os.WriteFile(filepath.Join(dir, "register"), nil, 0o644)
	}
	if mounted {
		must(t, s.Mount(s.Dir))
		mounts = 0
	}
	return s, &mounts
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestEnsureNative(t *testing.T) {
	s, mounts := fakeSystem(t, false)
	r, err := s.Ensure("amd64", "amd64")
	if err != nil || !r.Native || *mounts != 0 {
		t.Fatalf("native: %+v %v (mounts %d)", r, err, *mounts)
	}
}

func TestEnsureFindsExistingHandler(t *testing.T) {
	s, mounts := fakeSystem(t, true)
	// Registered by someone else under another name (tonistiigi/binfmt style).
	must(t, os.WriteFile(filepath.Join(s.Dir, "qemu-aarch64-buildkit"), []byte(aarch64Status), 0o644))
	r, err := s.Ensure("arm64", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if r.Registered || r.Handler != "qemu-aarch64-buildkit" || *mounts != 0 {
		t.Fatalf("got %+v, mounts %d", r, *mounts)
	}
	if !strings.Contains(r.String(), "already registered") {
		t.Errorf("report %q", r)
	}
}

func TestEnsureMountsAndRegisters(t *testing.T) {
	s, mounts := fakeSystem(t, false)
	interp := filepath.Join(t.TempDir(), "aarch64-binfmt-P")
	must(t, os.WriteFile(interp, []byte("#!/bin/sh\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(s.ConfDirs[0], "qemu-aarch64.conf"),
		[]byte("# qemu-user-static\n"+strings.Replace(debianAarch64, "%s", interp, 1)+"\n"), 0o644))
	// A plain directory stands in for the kernel: the register line is
	// written to a file, and no entry appears until the test makes one.
	regPath := filepath.Join(s.Dir, "register")
	_, err := s.Ensure("arm64", "amd64")
	// No entry appears in a plain directory: Ensure says so.
	if err == nil || !strings.Contains(err.Error(), "no enabled handler") {
		t.Fatalf("want the missing-entry error, got %v", err)
	}
	data, _ := os.ReadFile(regPath)
	registered := string(data)
	if *mounts != 1 {
		t.Errorf("mounted %d times, want 1", *mounts)
	}
	if !strings.HasPrefix(registered, ":qemu-aarch64:M::") || !strings.Contains(registered, interp) {
		t.Errorf("register line %q", registered)
	}
	// Once the kernel made it, Ensure is a no-op that reports it.
	must(t, os.WriteFile(filepath.Join(s.Dir, "qemu-aarch64"), []byte(aarch64Status), 0o644))
	r, err := s.Ensure("arm64", "amd64")
	if err != nil || r.Handler != "qemu-aarch64" || r.Registered {
		t.Fatalf("second Ensure: %+v %v", r, err)
	}
}

func TestEnsureErrors(t *testing.T) {
	s, _ := fakeSystem(t, false)
	s.Mount = func(string) error { return errors.New("operation not permitted") }
	if _, err := s.Ensure("arm64", "amd64"); err == nil || !strings.Contains(err.Error(), "mount -t binfmt_misc") {
		t.Errorf("mount refused: %v", err)
	}
	s, _ = fakeSystem(t, true)
	if _, err := s.Ensure("arm64", "amd64"); err == nil || !strings.Contains(err.Error(), "install qemu-user-static") {
		t.Errorf("no qemu-user-static: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(s.ConfDirs[0], "qemu-aarch64.conf"), []byte(strings.Replace(debianAarch64, "%s", "/nonexistent/qemu", 1)), 0o644))
	if _, err := s.Ensure("arm64", "amd64"); err == nil || !strings.Contains(err.Error(), "reinstall qemu-user-static") {
		t.Errorf("emulator missing: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(s.Dir, "status"), []byte("disabled\n"), 0o644))
	if _, err := s.Ensure("arm64", "amd64"); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("disabled: %v", err)
	}
	if _, err := s.Ensure("riscv64", "amd64"); err == nil || !strings.Contains(err.Error(), "riscv64") {
		t.Errorf("unknown arch: %v", err)
	}
}

func TestRuns(t *testing.T) {
	st, err := ParseStatus([]byte(aarch64Status))
	if err != nil || !st.Enabled || st.Interpreter == "" {
		t.Fatalf("%+v %v", st, err)
	}
	if !st.Runs(Arches["arm64"]) || st.Runs(Arches["amd64"]) {
		t.Error("the aarch64 entry must run arm64 and only arm64")
	}
	// An extension entry or one that ignores the machine runs nothing here.
	for _, bad := range []string{
		"enabled\ninterpreter /usr/bin/python3\nflags: \nextension .py\n",
		"enabled\ninterpreter /x\nflags: F\noffset 0\nmagic 7f454c46\n",
		"enabled\ninterpreter /x\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeff0000\n",
	} {
		st, err := ParseStatus([]byte(bad))
		if err != nil {
			t.Fatal(err)
		}
		if st.Runs(Arches["arm64"]) {
			t.Errorf("%q must not count as an arm64 handler", bad)
		}
	}
	if _, err := ParseStatus([]byte("magic zz\n")); err == nil {
		t.Error("bad hex accepted")
	}
}
