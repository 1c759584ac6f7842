// Package binfmt makes this machine run another architecture's programs,
// so BuildKit can run an arm64 image's build steps (and mmdebstrap its
// maintainer scripts) on an amd64 host: the kernel's binfmt_misc hands
// every foreign ELF binary to QEMU's user-mode emulator.
//
// Ensure is idempotent. It looks for an enabled handler whose magic matches
// the architecture's ELF header (whoever registered it: binfmt-support,
// systemd-binfmt, tonistiigi/binfmt), and only when there is none mounts
// binfmt_misc and registers the distro's qemu-user-static entry
// (/usr/lib/binfmt.d/qemu-<cpu>.conf, written with the F flag so the
// interpreter is opened at registration and works inside containers).
//
// Format of the register string and status files:
// https://docs.kernel.org/admin-guide/binfmt-misc.html
package binfmt

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// Arch is one foreign architecture: its ELF header's magic and mask and
// QEMU's name for its CPU.
type Arch struct {
	// QEMU is the user-mode emulator's CPU name (qemu-<QEMU>-static).
	QEMU string
	// Magic is the first 20 bytes of one of its ELF executables (class,
	// data, version, type, machine): what a handler must accept.
	Magic []byte
}

// Arches in Go's names. The magic is the ELF header of a 64-bit
// little-endian executable (ET_EXEC) of the machine.
var Arches = map[string]Arch{
	"arm64": {
		QEMU:  "aarch64",
		Magic: []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"),
	},
	"amd64": {
		QEMU:  "x86_64",
		Magic: []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00"),
	},
}

// System is where binfmt_misc and the distro's entries live; tests point
// it at a temporary tree.
type System struct {
	// Dir is the mounted binfmt_misc (/proc/sys/fs/binfmt_misc).
	Dir string
	// ConfDirs hold systemd-binfmt style entries (qemu-user-static's).
	ConfDirs []string
	// Mount mounts binfmt_misc on Dir; nil means the mount(2) syscall.
	Mount func(dir string) error
}

// Host is this machine.
var Host = System{
	Dir:      "/proc/sys/fs/binfmt_misc",
	ConfDirs: []string{"/etc/binfmt.d", "/usr/lib/binfmt.d", "/lib/binfmt.d"},
}

// Result says what Ensure found or did, for the build's log.
type Result struct {
	// Native is true when no emulation is needed.
	Native bool
	// Handler is the binfmt_misc entry that runs the architecture.
	Handler string
	// Registered is true when Ensure registered it.
	Registered bool
}

func (r Result) String() string {
	switch {
	case r.Native:
		return "native"
	case r.Registered:
		return "registered binfmt_misc handler " + r.Handler
	default:
		return "binfmt_misc handler " + r.Handler + " already registered"
	}
}

// Ensure makes the host run arch's binaries; see the package comment.
func Ensure(arch string) (Result, error) { return Host.Ensure(arch, runtime.GOARCH) }

// Ensure makes binaries of arch run on a machine of host's architecture.
func (s System) Ensure(arch, host string) (Result, error) {
	if arch == host {
		return Result{Native: true}, nil
	}
	a, ok := Arches[arch]
	if !ok {
		return Result{}, fmt.Errorf("no emulation is known for architecture %q (known: arm64, amd64)", arch)
	}
	if err := s.mount(); err != nil {
		return Result{}, err
	}
	if name, err := s.Handler(a); err != nil {
		return Result{}, err
	} else if name != "" {
		return Result{Handler: name}, nil
	}
	line, err := s.entry(a)
	if err != nil {
		return Result{}, err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "register"), []byte(line), 0); err != nil {
		return Result{}, fmt.Errorf("registering qemu-%s with binfmt_misc (the kernel refused: run as root, or on a kernel with CONFIG_BINFMT_MISC; a rootless container cannot): %w", a.QEMU, err)
	}
	name, err := s.Handler(a)
	if err != nil {
		return Result{}, err
	}
	if name == "" {
		return Result{}, fmt.Errorf("registered qemu-%s with binfmt_misc, but no enabled handler for %s appeared in %s", a.QEMU, arch, s.Dir)
	}
	return Result{Handler: name, Registered: true}, nil
}

// mount mounts binfmt_misc when it is not (a new machine has the empty
// directory only).
func (s System) mount() error {
	if _, err := os.Stat(filepath.Join(s.Dir, "register")); err == nil {
		return nil
	}
	mount := s.Mount
	if mount == nil {
		mount = func(dir string) error { return syscall.Mount("binfmt_misc", dir, "binfmt_misc", 0, "") }
	}
	if err := mount(s.Dir); err != nil {
		return fmt.Errorf("mounting binfmt_misc on %s (needed to run foreign binaries; as root: mount -t binfmt_misc binfmt_misc %s): %w", s.Dir, s.Dir, err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "register")); err != nil {
		return fmt.Errorf("binfmt_misc mounted on %s but has no register file: %w", s.Dir, err)
	}
	return nil
}

// Handler returns the name of an enabled entry whose magic and mask run
// a's executables, "" when there is none.
func (s System) Handler(a Arch) (string, error) {
	if st, err := os.ReadFile(filepath.Join(s.Dir, "status")); err == nil && strings.TrimSpace(string(st)) == "disabled" {
		return "", fmt.Errorf("binfmt_misc is disabled on this machine (%s/status): echo 1 > %s/status", s.Dir, s.Dir)
	}
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", s.Dir, err)
	}
	for _, e := range ents {
		if e.Name() == "register" || e.Name() == "status" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.Dir, e.Name()))
		if err != nil {
			continue // removed meanwhile
		}
		if h, err := ParseStatus(data); err == nil && h.Enabled && h.Runs(a) {
			return e.Name(), nil
		}
	}
	return "", nil
}

// entry finds the distro's registration line for a (qemu-user-static).
func (s System) entry(a Arch) (string, error) {
	name := "qemu-" + a.QEMU + ".conf"
	for _, dir := range s.ConfDirs {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			l = strings.TrimSpace(l)
			if l == "" || l[0] == '#' || l[0] == ';' {
				continue
			}
			interp, err := interpreter(l)
			if err != nil {
				return "", fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
			}
			if _, err := os.Stat(interp); err != nil {
				return "", fmt.Errorf("%s names the emulator %s, which is missing (reinstall qemu-user-static): %w", filepath.Join(dir, name), interp, err)
			}
			return l, nil
		}
	}
	return "", fmt.Errorf("no emulator for %s: install qemu-user-static (Debian: apt-get install qemu-user-static; ./earthly.sh installs it), which provides %s in %s", a.QEMU, name, strings.Join(s.ConfDirs, ", "))
}

// interpreter is the path field of a register line :name:type:offset:magic:mask:interpreter:flags.
func interpreter(line string) (string, error) {
	if len(line) < 2 {
		return "", errors.New("empty binfmt entry")
	}
	f := strings.Split(line[1:], line[:1])
	if len(f) < 6 || f[5] == "" {
		return "", fmt.Errorf("malformed binfmt entry %q", line)
	}
	return f[5], nil
}

// Status is one parsed /proc/sys/fs/binfmt_misc/<name> file.
type Status struct {
	Enabled     bool
	Interpreter string
	Flags       string
	Offset      int
	Magic, Mask []byte
}

// ParseStatus reads an entry's status file ("enabled", "interpreter …",
// "flags: …", "offset N", "magic <hex>", "mask <hex>"). Extension entries
// (no magic) parse with an empty Magic and run nothing here.
func ParseStatus(data []byte) (Status, error) {
	var st Status
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		var err error
		switch k {
		case "enabled":
			st.Enabled = true
		case "disabled":
			st.Enabled = false
		case "interpreter":
			st.Interpreter = v
		case "flags:":
			st.Flags = v
		case "offset":
			_, err = fmt.Sscanf(v, "%d", &st.Offset)
		case "magic":
			st.Magic, err = hex.DecodeString(v)
		case "mask":
			st.Mask, err = hex.DecodeString(v)
		}
		if err != nil {
			return Status{}, fmt.Errorf("binfmt status %q: %w", sc.Text(), err)
		}
	}
	return st, sc.Err()
}

// Runs reports whether the entry takes a's executables: a's magic (a
// real header) passes the entry's magic under its mask at offset 0, and the
// entry checks the machine field (bytes 18-19), so it is not a catch-all.
func (st Status) Runs(a Arch) bool {
	if st.Offset != 0 || len(st.Magic) < 20 || len(st.Magic) > len(a.Magic) {
		return false
	}
	mask := func(i int) byte {
		if st.Mask == nil {
			return 0xff
		}
		if i < len(st.Mask) {
			return st.Mask[i]
		}
		return 0
	}
	for i := range st.Magic {
		if a.Magic[i]&mask(i) != st.Magic[i]&mask(i) {
			return false
		}
	}
	return mask(18) == 0xff && mask(19) == 0xff
}
