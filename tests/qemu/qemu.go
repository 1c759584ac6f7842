// Package qemu boots Kairos artifacts in QEMU (software emulation) and talks
// to them over the serial console: wait for markers, log in, run commands.
// Every byte the guest prints is kept in a log file, and every timeout error
// carries the tail of it.
package qemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Firmware selects how the machine boots.
type Firmware string

// Firmwares QEMU offers here.
const (
	UEFI Firmware = "uefi" // OVMF
	BIOS Firmware = "bios" // SeaBIOS
	// SecureBoot is OVMF with Secure Boot enforcing and the Microsoft
	// keys enrolled (the third-party CA that signs shim): amd64 only.
	SecureBoot Firmware = "uefi-secureboot"
)

// OVMF images (Debian package ovmf).
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	// The Secure Boot build needs SMM, so that the guest cannot write the
	// variable store behind the firmware's back; its variables have the
	// Microsoft keys enrolled and Secure Boot on.
	OVMFSecureCode = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
	OVMFSecureVars = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

// AAVMF images: UEFI for arm64 (Debian package qemu-efi-aarch64).
const (
	AAVMFCode = "/usr/share/AAVMF/AAVMF_CODE.fd"
	AAVMFVars = "/usr/share/AAVMF/AAVMF_VARS.fd"
)

// machine is how QEMU emulates one architecture.
type machine struct {
	binary, pkg string
	args        []string
	code, vars  string
	firmwarePkg string
	// explicitDevices: the machine has no IDE and no default bus for
	// if=virtio drives, so CDs and disks are named devices.
	explicitDevices bool
}

var machines = map[string]machine{
	"amd64": {
		binary: "qemu-system-x86_64", pkg: "qemu-system-x86",
		args: []string{"-machine", "q35", "-vga", "std"},
		code: OVMFCode, vars: OVMFVars, firmwarePkg: "ovmf",
	},
	// QEMU's generic arm64 board, every CPU feature (-cpu max), emulated
	// with one host thread per guest CPU. pauth-impdef keeps max but uses
	// QEMU's cheap pointer-authentication hash instead of QARMA, which
	// dominates the emulation otherwise.
	"arm64": {
		binary: "qemu-system-aarch64", pkg: "qemu-system-arm",
		args: []string{"-machine", "virt", "-cpu", "max,pauth-impdef=on", "-accel", "tcg,thread=multi"},
		code: AAVMFCode, vars: AAVMFVars, firmwarePkg: "qemu-efi-aarch64",
		explicitDevices: true,
	},
}

// Options describe one machine.
type Options struct {
	// Arch is the guest's architecture, amd64 (default) or arm64 (QEMU
	// virt board, UEFI only).
	Arch     string
	Firmware Firmware
	CDROM    string   // ISO attached as CD
	USB      string   // image attached as a USB stick
	Disks    []string // qcow2/raw disks, virtio
	MemoryMB int
	CPUs     int
	// LogPath receives everything the serial console prints.
	LogPath string
	// Netboot, when set, boots from the network: QEMU's user network
	// serves TFTPDir over TFTP and DHCP names BootFile, which the NIC's
	// iPXE ROM fetches and runs.
	Netboot *Netboot
	// SSHPort, when set, forwards 127.0.0.1:SSHPort on the host to the
	// guest's port 22 (QEMU user networking).
	SSHPort int
	// TPM, when set, gives the machine a TPM 2.0 (QEMU tpm-crb) emulated
	// by swtpm, whose state lives in this directory: the same directory
	// is the same TPM across boots, a new one a new TPM.
	TPM string
	// Isolated gives the machine its NIC on a network of its own, a
	// multicast socket nobody else joins: the link is up and nothing
	// answers DHCP, as on a LAN whose DHCP server or gateway is down.
	// Netboot and SSHPort need QEMU's user network and are not taken.
	Isolated bool
	// Extra arguments appended to the command line.
	Extra []string
}

// Netboot is a network boot through QEMU's built-in DHCP/TFTP and iPXE.
type Netboot struct {
	TFTPDir  string
	BootFile string
}

// Machine is a running QEMU.
type Machine struct {
	cmd     *exec.Cmd
	tpm     *exec.Cmd // swtpm, when the machine has a TPM
	stdin   io.WriteCloser
	logPath string
	tmp     string

	mu      sync.Mutex
	out     bytes.Buffer
	cursor  int // WaitFor consumes output up to here
	notify  chan struct{}
	exited  chan struct{}
	exitErr error
	seq     int
}

// Start launches QEMU. It fails at once when QEMU or the firmware is missing.
func Start(o Options) (*Machine, error) {
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	mc, ok := machines[o.Arch]
	if !ok {
		return nil, fmt.Errorf("no QEMU machine for architecture %q", o.Arch)
	}
	if mc.explicitDevices && o.Firmware != UEFI {
		return nil, fmt.Errorf("%s machines boot with UEFI only (Firmware: qemu.UEFI)", o.Arch)
	}
	if o.Isolated && (o.Netboot != nil || o.SSHPort != 0) {
		return nil, fmt.Errorf("an isolated machine has no user network for Netboot or SSHPort")
	}
	machineArgs := slices.Clone(mc.args)
	if o.Firmware == SecureBoot {
		if o.Arch != "amd64" {
			return nil, fmt.Errorf("Secure Boot firmware is set up for amd64 only, not %s", o.Arch)
		}
		mc.code, mc.vars = OVMFSecureCode, OVMFSecureVars
		machineArgs[slices.Index(machineArgs, "q35")] = "q35,smm=on"
		machineArgs = append(machineArgs, "-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	bin, err := exec.LookPath(mc.binary)
	if err != nil {
		return nil, fmt.Errorf("%s not found: apt-get install %s (./earthly.sh installs it)", mc.binary, mc.pkg)
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 2048
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	tmp, err := os.MkdirTemp("", "kairos-qemu-")
	if err != nil {
		return nil, err
	}
	args := append(machineArgs, "-m", strconv.Itoa(o.MemoryMB), "-smp", strconv.Itoa(o.CPUs),
		"-display", "none", "-monitor", "none", "-serial", "stdio",
		"-no-reboot",
	)
	if o.Netboot != nil {
		args = append(args, "-nic", "user,model=virtio-net-pci,tftp="+o.Netboot.TFTPDir+",bootfile="+o.Netboot.BootFile, "-boot", "order=n")
	} else if o.Isolated {
		// A port of its own: another isolated machine must not be heard.
		port := 20000 + rand.IntN(20000)
		args = append(args, "-netdev", fmt.Sprintf("socket,id=isolated,mcast=230.0.0.2:%d,localaddr=127.0.0.1", port),
			"-device", "virtio-net-pci,netdev=isolated")
	} else {
		nic := "user,model=virtio-net-pci"
		if o.SSHPort != 0 {
			nic += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:22", o.SSHPort)
		}
		args = append(args, "-nic", nic)
	}
	if o.Firmware == UEFI || o.Firmware == SecureBoot {
		for _, f := range []string{mc.code, mc.vars} {
			if _, err := os.Stat(f); err != nil {
				os.RemoveAll(tmp)
				return nil, fmt.Errorf("UEFI firmware %s missing: apt-get install %s (./earthly.sh installs it)", f, mc.firmwarePkg)
			}
		}
		vars := filepath.Join(tmp, "VARS.fd")
		data, err := os.ReadFile(mc.vars)
		if err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		if err := os.WriteFile(vars, data, 0o644); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,readonly=on,file="+mc.code,
			"-drive", "if=pflash,format=raw,file="+vars)
	}
	if o.CDROM != "" {
		args = append(args, "-drive", "file="+o.CDROM+",media=cdrom,readonly=on,if=none,id=cd0")
		if mc.explicitDevices {
			args = append(args, "-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-cd,bus=scsi0.0,drive=cd0,bootindex=1")
		} else {
			args = append(args, "-device", "ide-cd,drive=cd0,bootindex=1")
		}
	}
	if o.USB != "" {
		args = append(args, "-device", "qemu-xhci,id=xhci",
			"-drive", "file="+o.USB+",format=raw,readonly=on,if=none,id=usb0",
			"-device", "usb-storage,bus=xhci.0,drive=usb0,bootindex=1")
	}
	for i, d := range o.Disks {
		format := "raw"
		if strings.HasSuffix(d, ".qcow2") {
			format = "qcow2"
		}
		if mc.explicitDevices {
			args = append(args, "-drive", fmt.Sprintf("file=%s,format=%s,if=none,id=disk%d", d, format, i),
				"-device", fmt.Sprintf("virtio-blk-pci,drive=disk%d,bootindex=%d", i, i+2))
			continue
		}
		args = append(args, "-drive", fmt.Sprintf("file=%s,format=%s,if=virtio,index=%d", d, format, i))
	}
	m := &Machine{logPath: o.LogPath, tmp: tmp, notify: make(chan struct{}, 1), exited: make(chan struct{})}
	fail := func(err error) (*Machine, error) {
		m.stopTPM()
		os.RemoveAll(tmp)
		return nil, err
	}
	if o.TPM != "" {
		sock, err := m.startTPM(o.TPM)
		if err != nil {
			return fail(err)
		}
		args = append(args, "-chardev", "socket,id=chrtpm,path="+sock,
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-crb,tpmdev=tpm0")
	}
	args = append(args, o.Extra...)
	m.cmd = exec.Command(bin, args...)
	if m.stdin, err = m.cmd.StdinPipe(); err != nil {
		return fail(err)
	}
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	m.cmd.Stderr = m.cmd.Stdout
	logw := io.WriteCloser(nopCloser{io.Discard})
	if o.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(o.LogPath), 0o755); err != nil {
			return fail(err)
		}
		f, err := os.Create(o.LogPath)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(f, "# %s %s\n", bin, strings.Join(args, " "))
		logw = f
	}
	if err := m.cmd.Start(); err != nil {
		logw.Close()
		return fail(fmt.Errorf("starting qemu: %w", err))
	}
	go m.pump(stdout, logw)
	return m, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// pump copies the guest's output into the buffer and the log until QEMU
// exits, then closes the log.
func (m *Machine) pump(r io.Reader, logw io.WriteCloser) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			logw.Write(buf[:n])
			m.mu.Lock()
			m.out.Write(buf[:n])
			m.mu.Unlock()
			select {
			case m.notify <- struct{}{}:
			default:
			}
		}
		if err != nil {
			break
		}
	}
	m.exitErr = m.cmd.Wait()
	logw.Close()
	close(m.exited)
}

// LogPath is the serial log file.
func (m *Machine) LogPath() string { return m.logPath }

// Tail returns the last n bytes the guest printed.
func (m *Machine) Tail(n int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.out.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Seen says whether re matches anything the guest printed since it
// started, whatever WaitFor has consumed.
func (m *Machine) Seen(re *regexp.Regexp) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return re.Match(m.out.Bytes())
}

// WaitFor waits until re matches output printed since the last match, and
// returns the submatches. On timeout or exit the error carries the log tail.
func (m *Machine) WaitFor(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		pending := m.out.Bytes()[m.cursor:]
		if loc := re.FindSubmatchIndex(pending); loc != nil {
			var groups []string
			for i := 0; i+1 < len(loc); i += 2 {
				if loc[i] < 0 {
					groups = append(groups, "")
					continue
				}
				groups = append(groups, string(pending[loc[i]:loc[i+1]]))
			}
			m.cursor += loc[1]
			m.mu.Unlock()
			return groups, nil
		}
		m.mu.Unlock()
		select {
		case <-m.notify:
		case <-m.exited:
			// Drain what arrived before the exit, then give up.
			m.mu.Lock()
			matched := re.Match(m.out.Bytes()[m.cursor:])
			m.mu.Unlock()
			if matched {
				continue
			}
			return nil, m.failure(fmt.Sprintf("qemu exited (%v) before %q appeared", m.exitErr, re))
		case <-deadline.C:
			return nil, m.failure(fmt.Sprintf("timed out after %s waiting for %q", timeout, re))
		case <-ctx.Done():
			return nil, m.failure(fmt.Sprintf("cancelled waiting for %q: %v", re, ctx.Err()))
		}
	}
}

func (m *Machine) failure(msg string) error {
	return fmt.Errorf("%s\n--- last serial output (full log: %s) ---\n%s\n--- end of serial output ---", msg, m.logPath, m.Tail(6000))
}

// Send types text on the serial console.
func (m *Machine) Send(s string) error {
	_, err := io.WriteString(m.stdin, s)
	return err
}

// typeCredentials waits for getty's login prompt and answers it and the
// password prompt.
func (m *Machine) typeCredentials(ctx context.Context, user, password string, timeout time.Duration) error {
	if _, err := m.WaitFor(ctx, LoginPrompt, timeout); err != nil {
		return fmt.Errorf("no login prompt: %w", err)
	}
	return m.answerLogin(ctx, user, password)
}

// LoginPrompt is getty's "<host> login: ", followed by the end of the line
// or by a kernel message printed over it (the user name is typed all the
// same).
var LoginPrompt = regexp.MustCompile(`(?m)(^|\s)[\w.-]* ?login: *($|\[ *\d+\.\d+\])`)

// answerLogin types the user and password at a prompt already seen.
func (m *Machine) answerLogin(ctx context.Context, user, password string) error {
	// Let getty settle: input typed before it reads the line is lost.
	time.Sleep(time.Second)
	if err := m.Send(user + "\n"); err != nil {
		return err
	}
	if _, err := m.WaitFor(ctx, regexp.MustCompile(`Password: *$`), time.Minute); err != nil {
		return fmt.Errorf("no password prompt: %w", err)
	}
	return m.Send(password + "\n")
}

// LoginRefused waits for the getty prompt, types user and password, and
// succeeds only when login refuses them and prompts again.
func (m *Machine) LoginRefused(ctx context.Context, user, password string, timeout time.Duration) error {
	if err := m.typeCredentials(ctx, user, password, timeout); err != nil {
		return err
	}
	// login(1) says "Login incorrect" after its delay; a shell prompt
	// instead means the account let us in.
	groups, err := m.WaitFor(ctx, regexp.MustCompile(`(Login incorrect)|([$#] $)`), 2*time.Minute)
	if err != nil {
		return fmt.Errorf("neither a refusal nor a shell: %w", err)
	}
	if groups[1] == "" {
		return fmt.Errorf("%s/%s logged in: the account must be refused", user, password)
	}
	return nil
}

// Login waits for the getty prompt and logs in.
func (m *Machine) Login(ctx context.Context, user, password string, timeout time.Duration) error {
	if err := m.typeCredentials(ctx, user, password, timeout); err != nil {
		return err
	}
	return m.shell(ctx, user)
}

// LoginAtPrompt logs in at the getty prompt the caller has waited for
// (WaitFor(LoginPrompt), e.g. to time it).
func (m *Machine) LoginAtPrompt(ctx context.Context, user, password string) error {
	if err := m.answerLogin(ctx, user, password); err != nil {
		return err
	}
	return m.shell(ctx, user)
}

// shell waits for the shell of a login and makes its prompt plain.
func (m *Machine) shell(ctx context.Context, user string) error {
	// Anything typed before the shell prints its prompt may be swallowed by
	// login, so wait for the prompt at the end of the output.
	if _, err := m.WaitFor(ctx, shellPrompt, 2*time.Minute); err != nil {
		return fmt.Errorf("no shell prompt after login: %w", err)
	}
	// Plain prompt, no bracketed-paste escapes around command output.
	if err := m.Send("bind 'set enable-bracketed-paste off' 2>/dev/null; PS1='$ '\n"); err != nil {
		return err
	}
	// A shell answers when a command's output comes back.
	out, code, err := m.Run(ctx, "id -un", time.Minute)
	if err != nil {
		return fmt.Errorf("no shell after login: %w", err)
	}
	if code != 0 || strings.TrimSpace(out) != user {
		return fmt.Errorf("logged in as %q (exit %d), want %q", strings.TrimSpace(out), code, user)
	}
	return nil
}

var shellPrompt = regexp.MustCompile(`[$#] $`)

// Run executes a shell command in the logged-in session and returns its
// output and exit code. The markers are printed with printf so that the
// terminal's echo of the typed line can never match them.
func (m *Machine) Run(ctx context.Context, command string, timeout time.Duration) (string, int, error) {
	m.seq++
	id := fmt.Sprintf("%d%d", time.Now().UnixNano()%100000, m.seq)
	line := fmt.Sprintf("printf '%%s%%s\\n' __KB_ %s; %s; printf '%%s%%s:%%d\\n' __KE_ %s $?\n", id, command, id)
	if err := m.Send(line); err != nil {
		return "", 0, err
	}
	re := regexp.MustCompile(`(?s)__KB_` + id + `\r?\n(.*?)__KE_` + id + `:(\d+)`)
	groups, err := m.WaitFor(ctx, re, timeout)
	if err != nil {
		return "", 0, fmt.Errorf("command %q: %w", command, err)
	}
	code, _ := strconv.Atoi(groups[2])
	return kernelLines.ReplaceAllString(strings.ReplaceAll(groups[1], "\r", ""), ""), code, nil
}

// kernelLines are the kernel's own messages ("[   74.670003] rcu: ..."),
// which the console interleaves with a command's output while the boot
// goes on (an RCU stall report under emulation, a late driver): never
// part of what the command printed.
var kernelLines = regexp.MustCompile(`(?m)^\[ *\d+\.\d+\] .*\n?`)

// Wait waits for QEMU to exit on its own: a guest poweroff, or a reboot
// (machines run with -no-reboot).
func (m *Machine) Wait(timeout time.Duration) error {
	select {
	case <-m.exited:
		return nil
	case <-time.After(timeout):
		return m.failure(fmt.Sprintf("QEMU still running after %s", timeout))
	}
}

// Stop kills QEMU and removes its temporary files.
func (m *Machine) Stop() {
	if m.cmd.Process != nil {
		m.cmd.Process.Kill()
	}
	<-m.exited
	m.stopTPM()
	os.RemoveAll(m.tmp)
}

// startTPM runs swtpm on state directory dir, its control socket in the
// machine's temporary directory, and waits for the socket.
func (m *Machine) startTPM(dir string) (string, error) {
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		return "", fmt.Errorf("swtpm not found: apt-get install swtpm swtpm-tools (./earthly.sh installs it)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	sock := filepath.Join(m.tmp, "swtpm.sock")
	m.tpm = exec.Command(bin, "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--ctrl", "type=unixio,path="+sock, "--terminate", "--log", "file="+filepath.Join(m.tmp, "swtpm.log"))
	if err := m.tpm.Start(); err != nil {
		m.tpm = nil
		return "", fmt.Errorf("starting swtpm: %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(m.tmp, "swtpm.log"))
			return "", fmt.Errorf("swtpm made no socket in 10s: %s", log)
		}
	}
	return sock, nil
}

// stopTPM ends swtpm (it also ends by itself when QEMU goes: --terminate).
func (m *Machine) stopTPM() {
	if m.tpm != nil && m.tpm.Process != nil {
		m.tpm.Process.Kill()
		m.tpm.Wait()
	}
	m.tpm = nil
}
