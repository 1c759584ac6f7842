package localbuild

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeELF writes a bare 64-bit little-endian ELF executable header for
// machine: what ParseAgents reads.
func fakeELF(t *testing.T, dir, name string, machine elf.Machine) string {
	t.Helper()
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: 1, Ehsize: 64}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := binary.Write(f, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAgents(t *testing.T) {
	dir := t.TempDir()
	amd := fakeELF(t, dir, "kairos-agent", elf.EM_X86_64)
	arm := fakeELF(t, dir, "kairos-agent-arm64", elf.EM_AARCH64)
	a, err := ParseAgents(amd, arm)
	if err != nil {
		t.Fatal(err)
	}
	if a["amd64"] != amd || a["arm64"] != arm {
		t.Fatalf("agents %v", a)
	}
	if _, err := a.For("riscv64"); err == nil || !strings.Contains(err.Error(), "GOARCH=riscv64") {
		t.Errorf("missing arch: %v", err)
	}
	if _, err := ParseAgents(amd, fakeELF(t, dir, "other", elf.EM_X86_64)); err == nil || !strings.Contains(err.Error(), "two kairos-agent binaries for amd64") {
		t.Errorf("duplicate: %v", err)
	}
	text := filepath.Join(dir, "script")
	os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755)
	if _, err := ParseAgents(text); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Errorf("script: %v", err)
	}

	amd64 := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	// Each agent's context holds the mesh's program beside it too.
	if _, _, err := a.Contexts([]ocispec.Platform{arm64}); err == nil || !strings.Contains(err.Error(), "no kairos-p2p beside") || !strings.Contains(err.Error(), "GOARCH=arm64") {
		t.Errorf("without the mesh's program: %v", err)
	}
	fakeELF(t, dir, "kairos-p2p-arm64", elf.EM_X86_64)
	if _, _, err := a.Contexts([]ocispec.Platform{arm64}); err == nil || !strings.Contains(err.Error(), "kairos-p2p-arm64 is not a Linux arm64 executable") {
		t.Errorf("a mesh program of another machine: %v", err)
	}
	fakeELF(t, dir, "kairos-p2p-arm64", elf.EM_AARCH64)
	fakeELF(t, dir, "kairos-p2p", elf.EM_X86_64)
	// One platform: the plain "agent" context, as before.
	one, cleanup, err := a.Contexts([]ocispec.Platform{arm64})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if _, err := os.Stat(filepath.Join(one["agent"], "kairos-agent")); err != nil || len(one) != 1 {
		t.Errorf("one platform: %v %v", one, err)
	}
	if f, err := elf.Open(filepath.Join(one["agent"], "kairos-p2p")); err != nil || f.Machine != elf.EM_AARCH64 {
		t.Errorf("the arm64 context's kairos-p2p: %v", err)
	} else {
		f.Close()
	}
	// Several: one per platform, named as dockerui looks them up.
	both, cleanup2, err := a.Contexts([]ocispec.Platform{amd64, arm64})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup2()
	for name, want := range map[string]elf.Machine{"agent::linux/amd64": elf.EM_X86_64, "agent::linux/arm64": elf.EM_AARCH64} {
		f, err := elf.Open(filepath.Join(both[name], "kairos-agent"))
		if err != nil {
			t.Fatalf("%s: %v (contexts %v)", name, err, both)
		}
		if f.Machine != want {
			t.Errorf("%s holds a %s agent", name, f.Machine)
		}
		f.Close()
		if l := localName(name); strings.ContainsAny(l, ":/") {
			t.Errorf("local name %q of %s", l, name)
		}
	}
}

func TestMeshFor(t *testing.T) {
	for agent, want := range map[string]string{
		"/b/kairos-agent":       "/b/kairos-p2p",
		"/b/kairos-agent-arm64": "/b/kairos-p2p-arm64",
		"/b/agent.bin":          "/b/kairos-p2p",
	} {
		if got := MeshFor(agent); got != want {
			t.Errorf("MeshFor(%s) = %s, want %s", agent, got, want)
		}
	}
}
