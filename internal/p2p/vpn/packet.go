package vpn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Addresses are the source and destination of an IP packet read from the
// device or from a peer, checked enough to route it: version 4 or 6, a
// header that fits, a total length that matches.
func Addresses(pkt []byte) (src, dst netip.Addr, err error) {
	if len(pkt) < 1 {
		return src, dst, errors.New("empty packet")
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return src, dst, fmt.Errorf("IPv4 packet of %d bytes: shorter than its header", len(pkt))
		}
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:]))
		if ihl < 20 || total < ihl || total > len(pkt) {
			return src, dst, fmt.Errorf("IPv4 header length %d, total length %d, packet %d bytes", ihl, total, len(pkt))
		}
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), nil
	case 6:
		if len(pkt) < 40 {
			return src, dst, fmt.Errorf("IPv6 packet of %d bytes: shorter than its header", len(pkt))
		}
		if payload := int(binary.BigEndian.Uint16(pkt[4:])); 40+payload > len(pkt) {
			return src, dst, fmt.Errorf("IPv6 payload length %d, packet %d bytes", payload, len(pkt))
		}
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), nil
	}
	return src, dst, fmt.Errorf("IP version %d", pkt[0]>>4)
}

// MaxPacket bounds a packet on a stream: the device's MTU is below it,
// and a peer announcing more is not believed.
const MaxPacket = 65535

// WriteFrame sends one packet on a peer stream: a 2-byte big-endian
// length, then the packet.
func WriteFrame(w io.Writer, pkt []byte) error {
	if len(pkt) == 0 || len(pkt) > MaxPacket {
		return fmt.Errorf("a packet of %d bytes cannot be framed", len(pkt))
	}
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(len(pkt)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(pkt)
	return err
}

// ReadFrame reads one packet from a peer stream into buf (MaxPacket
// bytes), returning it.
func ReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n == 0 || n > len(buf) {
		return nil, fmt.Errorf("a frame of %d bytes", n)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// Accept says whether a packet a peer sent may go to the device: it must
// come from the peer's own VPN address (no node can speak for another)
// and go to this node's. A node of the mesh is trusted with the token,
// not with the others' addresses.
func Accept(pkt []byte, peerAddr, self netip.Addr) error {
	src, dst, err := Addresses(pkt)
	if err != nil {
		return err
	}
	if src != peerAddr {
		return fmt.Errorf("a packet from %s claims to come from %s", peerAddr, src)
	}
	if dst != self && !dst.IsMulticast() {
		return fmt.Errorf("a packet from %s to %s reached %s", peerAddr, dst, self)
	}
	return nil
}
