// Package vpn is the mesh's VPN device: a Linux TUN interface whose IP
// packets the mesh carries between nodes over libp2p streams.
package vpn

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultInterface is the device name when the config names none, as
// upstream.
const DefaultInterface = "edgevpn0"

// DefaultMTU leaves room for libp2p's framing inside a 1500-byte path.
const DefaultMTU = 1420

// Device is an open TUN interface: each Read gives one IP packet the
// kernel routed to it, each Write hands one to the kernel as received.
type Device struct {
	*os.File
	Name string
}

// Open makes (or attaches to) the TUN interface name, gives it address
// (its prefix is the VPN's network, routed to the device) and mtu, and
// brings it up.
func Open(name string, address netip.Prefix, mtu int) (*Device, error) {
	if len(name) == 0 || len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("interface name %q: 1 to %d bytes", name, unix.IFNAMSIZ-1)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0) // non-blocking: Go's poller, deadlines and Close wake readers
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], name)
	req.flags = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("creating TUN interface %s: %w", name, errno)
	}
	d := &Device{File: os.NewFile(uintptr(fd), "/dev/net/tun:"+name), Name: name}
	link, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetMTU(link, mtu)
	}
	if err == nil {
		err = netlink.AddrReplace(link, &netlink.Addr{IPNet: prefixNet(address)})
	}
	if err == nil {
		err = netlink.LinkSetUp(link)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("configuring %s: %w", name, err)
	}
	return d, nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Readdress moves the device from address old to address new.
func (d *Device) Readdress(old, new netip.Prefix) error {
	link, err := netlink.LinkByName(d.Name)
	if err != nil {
		return err
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: prefixNet(new)}); err != nil {
		return fmt.Errorf("giving %s the address %s: %w", d.Name, new, err)
	}
	if old != new {
		if err := netlink.AddrDel(link, &netlink.Addr{IPNet: prefixNet(old)}); err != nil {
			return fmt.Errorf("taking %s from %s: %w", old, d.Name, err)
		}
	}
	return nil
}
