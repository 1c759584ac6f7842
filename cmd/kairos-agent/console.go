package main

import (
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/agent/host"
)

// consoles writes to every active system console (the kernel's console=
// list, e.g. ttyS0 and tty1) besides w: a service's own console output
// reaches only /dev/console, the last of them, and an operator watching
// a serial line must see the install's progress too. A console that w
// already is (an operator running the command on it) is left out, so
// that each line shows once. Writes to consoles are best effort and never
// fail.
func consoles(w io.Writer) io.Writer {
	data, err := os.ReadFile(host.System.ConsoleActive)
	if err != nil {
		return w
	}
	out := []io.Writer{w}
	for _, name := range strings.Fields(string(data)) {
		if !sameTerminal(w, "/dev/"+name) {
			out = append(out, console("/dev/"+name))
		}
	}
	return io.MultiWriter(out...)
}

// sameTerminal tells whether w is the character device at path.
func sameTerminal(w io.Writer, path string) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Mode&unix.S_IFMT == unix.S_IFCHR && b.Mode&unix.S_IFMT == unix.S_IFCHR && a.Rdev == b.Rdev
}

// console opens the terminal for each write: a getty starting on it
// hangs up earlier descriptors, and the next line must still get there.
// Lines end with CR LF, as a terminal without a getty may not add the CR.
type console string

func (c console) Write(p []byte) (int, error) {
	f, err := os.OpenFile(string(c), os.O_WRONLY|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err == nil {
		f.Write([]byte(strings.ReplaceAll(string(p), "\n", "\r\n")))
		f.Close()
	}
	return len(p), nil
}
