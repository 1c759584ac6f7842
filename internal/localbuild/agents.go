package localbuild

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kairos-io/kairos/frontend"
)

// Agents are kairos-agent binaries by architecture (Go's names), each
// known by its own ELF header: an image embeds the agent of its platform,
// and the mesh's program beside it (MeshFor).
type Agents map[string]string

// ParseAgents classifies binaries by the machine in their ELF header; two
// for one architecture, or a file that is not a Linux executable, are
// errors.
func ParseAgents(paths ...string) (Agents, error) {
	a := Agents{}
	for _, p := range paths {
		arch, err := ELFArch(p)
		if err != nil {
			return nil, fmt.Errorf("kairos-agent %s: %w", p, err)
		}
		if prev, ok := a[arch]; ok {
			return nil, fmt.Errorf("two kairos-agent binaries for %s: %s and %s", arch, prev, p)
		}
		a[arch] = p
	}
	return a, nil
}

// For returns the agent of arch, or an error saying how to build it.
func (a Agents) For(arch string) (string, error) {
	if p, ok := a[arch]; ok {
		return p, nil
	}
	have := slices.Sorted(func(yield func(string) bool) {
		for k := range a {
			if !yield(k) {
				return
			}
		}
	})
	return "", fmt.Errorf("no kairos-agent for %s (given: %s): build one with CGO_ENABLED=0 GOARCH=%s go build -o kairos-agent-%s ./cmd/kairos-agent (and -o kairos-p2p-%s ./cmd/kairos-p2p beside it) and pass it with --agent",
		arch, strings.Join(have, ", "), arch, arch, arch)
}

// Contexts makes the agent named contexts of a build of plats: "agent"
// for one platform; for several, one per platform as "agent::<platform>",
// which dockerui picks by the platform being built. cleanup removes them.
func (a Agents) Contexts(plats []ocispec.Platform) (map[string]string, func(), error) {
	out := map[string]string{}
	var cleanups []func()
	cleanup := func() {
		for _, c := range cleanups {
			c()
		}
	}
	for _, p := range plats {
		bin, err := a.For(p.Architecture)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		dir, c, err := AgentContext(bin)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		cleanups = append(cleanups, c)
		name := frontend.ContextAgent
		if len(plats) > 1 {
			name += "::" + platforms.FormatAll(platforms.Normalize(p))
		}
		out[name] = dir
	}
	return out, cleanup, nil
}

// MeshFor is the cluster mesh's program (cmd/kairos-p2p) that goes with
// the agent binary: beside it, named as it is with kairos-p2p for
// kairos-agent (kairos-agent-arm64: kairos-p2p-arm64), or kairos-p2p when
// the agent's name does not say kairos-agent.
func MeshFor(agent string) string {
	dir, base := filepath.Split(agent)
	if strings.Contains(base, frontend.AgentFile) {
		return filepath.Join(dir, strings.Replace(base, frontend.AgentFile, frontend.MeshFile, 1))
	}
	return filepath.Join(dir, frontend.MeshFile)
}

// AgentContext makes the agent context of an agent binary: a directory
// holding it and its mesh program (MeshFor) under the names the frontend
// copies into the image, which must be built for the same machine.
func AgentContext(agent string) (dir string, cleanup func(), err error) {
	mesh := MeshFor(agent)
	arch, err := ELFArch(agent)
	if err != nil {
		return "", nil, fmt.Errorf("kairos-agent %s: %w", agent, err)
	}
	if _, err := os.Stat(mesh); err != nil {
		return "", nil, fmt.Errorf("no %s beside kairos-agent %s (build it with CGO_ENABLED=0 GOARCH=%s go build -o %s ./cmd/kairos-p2p): %w",
			frontend.MeshFile, agent, arch, mesh, err)
	}
	if m, err := ELFArch(mesh); err != nil || m != arch {
		return "", nil, fmt.Errorf("%s is not a Linux %s executable like kairos-agent %s (%s, %v)", mesh, arch, agent, m, err)
	}
	return filesContext(frontend.AgentFile, contextFile{agent, frontend.AgentFile}, contextFile{mesh, frontend.MeshFile})
}

// ELFArch is the Go architecture of a Linux executable.
func ELFArch(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("not an executable for Linux: %w", err)
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_ARM:
		return "arm", nil
	case elf.EM_RISCV:
		return "riscv64", nil
	}
	return "", fmt.Errorf("executable for %s, which Kairos does not build for", f.Machine)
}

// localName is the session's name for a context's directory: a named
// context may carry a platform ("agent::linux/arm64"), which is not a
// valid local name.
func localName(context string) string {
	return strings.NewReplacer("::", "-", "/", "_").Replace(filepath.Clean(context))
}
