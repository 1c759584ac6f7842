package earlyboot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
)

// Coldplug does for the fast path what udev does in an initramfs: it loads
// the kernel modules of the devices present and of those that appear (by
// their modalias, through modprobe, which reads the initramfs's module
// aliases and blacklist), and links /dev/disk/by-label/<label> to each
// block device with a file system label, for the mounts that wait for
// them. It works from the kernel's uevents, after one pass over /sys.
type Coldplug struct {
	Sys, Dev string
	// Modprobe loads the modules of aliases; modprobe(8) by default.
	Modprobe func(aliases ...string)

	mu      sync.Mutex
	aliases map[string]bool
	pending atomic.Int32
	slots   chan struct{}
	sock    int
	done    chan struct{}
}

// maxModprobe is how many modprobes run at once: module loading is
// mostly the kernel checking signatures and relocating, which spreads
// over CPUs.
const maxModprobe = 4

// Start opens the uevent socket, makes one pass over what is present and
// goes on handling events until Stop.
func (c *Coldplug) Start() error {
	c.aliases = map[string]bool{}
	c.slots = make(chan struct{}, maxModprobe)
	c.done = make(chan struct{})
	if c.Modprobe == nil {
		c.Modprobe = modprobe
	}
	// The socket first: nothing that appears during the pass is missed.
	sock, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return err
	}
	unix.SetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	if err := unix.Bind(sock, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(sock)
		return err
	}
	c.sock = sock
	go c.events()
	c.staticNodes()
	var found []string
	filepath.WalkDir(filepath.Join(c.Sys, "devices"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "modalias" && d.Type().IsRegular() {
			if data, err := os.ReadFile(p); err == nil {
				found = append(found, strings.TrimSpace(string(data)))
			}
		}
		return nil
	})
	c.load(found...)
	c.Rescan()
	return nil
}

// Settle waits, at most timeout, for the modprobes under way: drivers
// the next steps may need without naming a device (the TPM's, for an
// encrypted partition) are loaded then.
func (c *Coldplug) Settle(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for c.pending.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop ends event handling and waits (at most half a minute) for the
// modprobes under way: they read the initramfs, which switch-root
// deletes.
func (c *Coldplug) Stop() {
	close(c.done)
	unix.Close(c.sock)
	c.Settle(30 * time.Second)
}

func (c *Coldplug) events() {
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(c.sock, buf, 0)
		select {
		case <-c.done:
			return
		default:
		}
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) {
				// A lost burst: a pass over the block devices
				// catches up on the links.
				c.Rescan()
				continue
			}
			return
		}
		ev := ParseUevent(buf[:n])
		if ev == nil {
			continue
		}
		if m := ev["MODALIAS"]; m != "" && ev["ACTION"] == "add" {
			c.load(m)
		}
		if ev["SUBSYSTEM"] == "block" && (ev["ACTION"] == "add" || ev["ACTION"] == "change") && ev["DEVNAME"] != "" {
			c.link(filepath.Base(ev["DEVNAME"]))
		}
	}
}

// ParseUevent reads a kernel uevent ("add@/devices/...\0KEY=value\0...");
// nil for anything else (udev's own messages on the socket start with
// "libudev").
func ParseUevent(msg []byte) map[string]string {
	fields := bytes.Split(msg, []byte{0})
	if len(fields) < 2 || !bytes.Contains(fields[0], []byte("@/")) {
		return nil
	}
	ev := map[string]string{}
	for _, f := range fields[1:] {
		if k, v, ok := strings.Cut(string(f), "="); ok {
			ev[k] = v
		}
	}
	return ev
}

// load runs modprobe for aliases not seen before.
func (c *Coldplug) load(aliases ...string) {
	c.mu.Lock()
	var todo []string
	for _, a := range aliases {
		if a != "" && !c.aliases[a] {
			c.aliases[a] = true
			todo = append(todo, a)
		}
	}
	c.mu.Unlock()
	for _, a := range todo {
		c.pending.Add(1)
		go func() {
			defer c.pending.Add(-1)
			c.slots <- struct{}{}
			defer func() { <-c.slots }()
			c.Modprobe(a)
		}()
	}
}

func modprobe(aliases ...string) {
	// -b: the blacklist holds; -q: an alias no module in the initramfs
	// serves is not an error.
	exec.Command("modprobe", append([]string{"-b", "-q", "-a"}, aliases...)...).Run()
}

// staticNodes makes the device nodes of modules loaded on first use
// (modules.devname: /dev/loop-control, /dev/mapper/control, ...), as
// kmod-static-nodes does under systemd: opening one loads its module.
func (c *Coldplug) staticNodes() {
	var uts unix.Utsname
	if unix.Uname(&uts) != nil {
		return
	}
	release := unix.ByteSliceToString(uts.Release[:])
	data, err := os.ReadFile(filepath.Join("/lib/modules", release, "modules.devname"))
	if err != nil {
		return
	}
	for _, n := range ParseDevname(data) {
		p := filepath.Join(c.Dev, n.Name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		mode := uint32(unix.S_IFCHR)
		if n.Block {
			mode = unix.S_IFBLK
		}
		unix.Mknod(p, mode|0o600, int(unix.Mkdev(n.Major, n.Minor)))
	}
}

// DevNode is one line of modules.devname: a module's device node.
type DevNode struct {
	Name         string // loop-control, mapper/control
	Block        bool
	Major, Minor uint32
}

// ParseDevname reads modules.devname ("loop loop-control c10:237");
// lines it cannot read, and names that would leave /dev, are left out.
func ParseDevname(data []byte) []DevNode {
	var out []DevNode
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		name := filepath.Clean(f[1])
		if name != f[1] || strings.HasPrefix(name, "/") || strings.HasPrefix(name, "..") {
			continue
		}
		var n DevNode
		var kind byte
		if _, err := fmt.Sscanf(f[2], "%c%d:%d", &kind, &n.Major, &n.Minor); err != nil || (kind != 'c' && kind != 'b') {
			continue
		}
		n.Name, n.Block = name, kind == 'b'
		out = append(out, n)
	}
	return out
}

// Rescan links every block device present.
func (c *Coldplug) Rescan() {
	entries, _ := os.ReadDir(filepath.Join(c.Sys, "class/block"))
	for _, e := range entries {
		c.link(e.Name())
	}
}

// link makes /dev/disk/by-label/<label> point at the block device name
// (vda3, dm-0, loop0) when it has a label.
func (c *Coldplug) link(name string) {
	if name != filepath.Base(name) || name == "." || name == ".." {
		return
	}
	dev := filepath.Join(c.Dev, name)
	// An opened LUKS2 container: /dev/mapper/<name>, as udev's dm
	// rules link it (libdevmapper leaves that to udev when it runs).
	if dm, err := os.ReadFile(filepath.Join(c.Sys, "class/block", name, "dm/name")); err == nil {
		if n := blockdev.LinkName(strings.TrimSpace(string(dm))); n != "" {
			os.MkdirAll(filepath.Join(c.Dev, "mapper"), 0o755)
			os.Symlink("../"+name, filepath.Join(c.Dev, "mapper", n))
		}
	}
	label := ""
	if bf, err := os.ReadFile(filepath.Join(c.Sys, "class/block", name, "loop/backing_file")); err == nil {
		label = ImageLabel(string(bf))
	}
	if label == "" {
		f, err := os.Open(dev)
		if err != nil {
			return
		}
		_, label = blockdev.Probe(f)
		f.Close()
	}
	ln := blockdev.LinkName(label)
	if ln == "" {
		return
	}
	dir := filepath.Join(c.Dev, "disk/by-label")
	os.MkdirAll(dir, 0o755)
	link := filepath.Join(dir, ln)
	target := "../../" + name
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return
	}
	// Replaced in one step, as udev does: a reader never sees no link.
	tmp := link + ".kairos-tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
	}
}
