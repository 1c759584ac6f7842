package main

import (
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// consoles writes to every active system console (the kernel's console=
// list, e.g. ttyS0 and tty1) besides w: a service's own console output
// reaches only /dev/console, the last of them, and an operator watching
// a serial line must see the install's progress too. Writes to consoles
// are best effort and never fail.
func consoles(w io.Writer) io.Writer {
	data, err := os.ReadFile("/sys/class/tty/console/active")
	if err != nil {
		return w
	}
	out := []io.Writer{w}
	for _, name := range strings.Fields(string(data)) {
		out = append(out, console("/dev/"+name))
	}
	return io.MultiWriter(out...)
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
