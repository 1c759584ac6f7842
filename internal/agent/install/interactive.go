package install

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/stages"
)

// Answers are what interactive-install asks for.
type Answers struct {
	Device   string
	User     string
	Password string
	SSHKey   string
	K3s      bool
}

// Config is the cloud-config the answers make: it is what the node runs
// with, copied to /oem/90_custom.yaml like any other install's. The
// password goes in hashed: the file stays on the disk.
func (a Answers) Config() ([]byte, error) {
	user := map[string]any{"name": a.User, "groups": []string{"admin"}}
	if a.Password != "" {
		hash, err := stages.HashPassword(a.Password)
		if err != nil {
			return nil, fmt.Errorf("hashing the password: %w", err)
		}
		user["passwd"] = hash
	}
	if a.SSHKey != "" {
		user["ssh_authorized_keys"] = []string{a.SSHKey}
	}
	doc := map[string]any{
		"install": map[string]any{"device": a.Device, "reboot": true},
		"users":   []any{user},
	}
	if a.K3s {
		doc["k3s"] = map[string]any{"enabled": true}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append([]byte("#cloud-config\n"), out...), nil
}

// Ask runs the questions on a console (serial or screen): one line per
// answer, defaults in brackets. tty, when it is a terminal, hides the
// password as it is typed. The last question confirms erasing the disk;
// anything but yes stops with an error.
func Ask(in io.Reader, out io.Writer, tty *os.File, disks []blockdev.Disk) (Answers, error) {
	r := bufio.NewReader(in)
	line := func(prompt, def string) (string, error) {
		if def != "" {
			fmt.Fprintf(out, "%s [%s]: ", prompt, def)
		} else {
			fmt.Fprintf(out, "%s: ", prompt)
		}
		s, err := r.ReadString('\n')
		if err != nil && (err != io.EOF || s == "") {
			return "", fmt.Errorf("reading the answer to %q: %w", prompt, err)
		}
		if s = strings.TrimSpace(s); s == "" {
			return def, nil
		}
		return s, nil
	}
	yes := func(prompt string) (bool, error) {
		s, err := line(prompt+" (y/n)", "n")
		return strings.HasPrefix(strings.ToLower(s), "y"), err
	}
	fmt.Fprintln(out, "Kairos interactive installation. Disks:")
	def := ""
	for _, d := range disks {
		fmt.Fprintf(out, "  %-16s %8d MiB\n", d.Path, d.Size>>20)
		if def == "" {
			def = d.Path
		}
	}
	var a Answers
	var err error
	if a.Device, err = line("Disk to install to", def); err != nil {
		return a, err
	}
	if a.Device == "" {
		return a, fmt.Errorf("no disk given")
	}
	if a.User, err = line("User name", "kairos"); err != nil {
		return a, err
	}
	restore := hideInput(tty)
	a.Password, err = line("Password (empty: none, log in with an SSH key)", "")
	restore()
	if err != nil {
		return a, err
	}
	if a.SSHKey, err = line("SSH public key (empty: none)", ""); err != nil {
		return a, err
	}
	if a.K3s, err = yes("Enable k3s"); err != nil {
		return a, err
	}
	ok, err := yes(fmt.Sprintf("Install to %s? Everything on it is erased", a.Device))
	if err != nil {
		return a, err
	}
	if !ok {
		return a, fmt.Errorf("installation cancelled: nothing was written")
	}
	return a, nil
}

// hideInput turns off echo on a terminal; the returned func turns it back.
func hideInput(tty *os.File) func() {
	if tty == nil {
		return func() {}
	}
	fd := int(tty.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}
	}
	old := *t
	t.Lflag &^= unix.ECHO
	if unix.IoctlSetTermios(fd, unix.TCSETS, t) != nil {
		return func() {}
	}
	return func() {
		unix.IoctlSetTermios(fd, unix.TCSETS, &old)
		fmt.Fprintln(tty)
	}
}
