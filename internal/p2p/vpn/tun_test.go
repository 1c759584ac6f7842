package vpn

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// inNewNetns runs f on a locked thread in a new network namespace (root):
// nothing it creates touches the machine's own network.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the VPN tests make network namespaces and TUN devices: run as root")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies in the namespace
		orig, err := netns.Get()
		if err != nil {
			t.Error(err)
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			t.Error(err)
			return
		}
		defer ns.Close()
		f()
	}()
	<-done
}

// A packet the kernel routes into the VPN network comes out of the
// device; one written to the device reaches a socket as if received.
func TestDevice(t *testing.T) {
	inNewNetns(t, func() {
		d, err := Open("kvpn-test0", netip.MustParsePrefix("10.99.0.1/24"), DefaultMTU)
		if err != nil {
			t.Error(err)
			return
		}
		defer d.Close()
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 99, 0, 1), Port: 4000})
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		if _, err := conn.WriteToUDP([]byte("out"), &net.UDPAddr{IP: net.IPv4(10, 99, 0, 2), Port: 5000}); err != nil {
			t.Error(err)
			return
		}
		buf := make([]byte, 2000)
		d.SetReadDeadline(time.Now().Add(5 * time.Second))
		var pkt []byte
		for {
			n, err := d.Read(buf)
			if err != nil {
				t.Errorf("reading the device: %v", err)
				return
			}
			// Skip what the kernel sends by itself (IPv6 router
			// solicitations...): the UDP packet to 10.99.0.2 is the one.
			if n >= 28 && buf[0]>>4 == 4 && buf[9] == 17 && netip.AddrFrom4([4]byte(buf[16:20])) == netip.MustParseAddr("10.99.0.2") {
				pkt = buf[:n]
				break
			}
		}
		if string(pkt[28:]) != "out" || binary.BigEndian.Uint16(pkt[22:]) != 5000 {
			t.Errorf("packet %x", pkt)
		}
		// The answer, from 10.99.0.2:5000, written into the device.
		reply := udpPacket(netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.1"), 5000, 4000, []byte("back"))
		if _, err := d.Write(reply); err != nil {
			t.Errorf("writing the device: %v", err)
			return
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil || string(buf[:n]) != "back" || from.Port != 5000 {
			t.Errorf("socket got %q from %v: %v", buf[:n], from, err)
		}
	})
}

// udpPacket is an IPv4 UDP packet (UDP checksum 0: none, valid in IPv4).
func udpPacket(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], dport)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}
