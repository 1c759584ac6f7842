package vpn

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

var (
	a = netip.MustParseAddr("10.1.0.5")
	b = netip.MustParseAddr("10.1.0.9")
	c = netip.MustParseAddr("10.1.0.12")
)

func TestAddressesAndAccept(t *testing.T) {
	pkt := udpPacket(a, b, 1, 2, []byte("hi"))
	src, dst, err := Addresses(pkt)
	if err != nil || src != a || dst != b {
		t.Fatalf("Addresses = %s %s %v", src, dst, err)
	}
	if err := Accept(pkt, a, b); err != nil {
		t.Errorf("a packet from a to b, sent by a, refused: %v", err)
	}
	if err := Accept(pkt, c, b); err == nil || !strings.Contains(err.Error(), "claims to come from") {
		t.Errorf("c speaking for a: %v", err)
	}
	if err := Accept(pkt, a, c); err == nil {
		t.Error("a packet for b accepted by c")
	}
	for name, p := range map[string][]byte{
		"empty":      nil,
		"short":      pkt[:10],
		"truncated":  pkt[:len(pkt)-1],
		"version 5":  append([]byte{0x50}, pkt[1:]...),
		"short ipv6": append([]byte{0x60}, make([]byte, 30)...),
	} {
		if _, _, err := Addresses(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFrames(t *testing.T) {
	var stream bytes.Buffer
	p1, p2 := udpPacket(a, b, 1, 2, []byte("one")), udpPacket(a, b, 1, 2, []byte("two"))
	for _, p := range [][]byte{p1, p2} {
		if err := WriteFrame(&stream, p); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, MaxPacket)
	for _, want := range [][]byte{p1, p2} {
		got, err := ReadFrame(&stream, buf)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ReadFrame = %x, %v", got, err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0}), buf); err == nil {
		t.Error("an empty frame was read")
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 9, 1}), buf); err == nil {
		t.Error("a cut frame was read")
	}
}

func FuzzAccept(f *testing.F) {
	f.Add(udpPacket(a, b, 1, 2, []byte("x")))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if Accept(pkt, a, b) == nil {
			src, dst, _ := Addresses(pkt)
			if src != a || (dst != b && !dst.IsMulticast()) {
				t.Fatalf("accepted %s -> %s", src, dst)
			}
		}
	})
}
