// Package dns is the mesh's name server (p2p.dns: true): the nodes'
// hostnames resolve to their VPN addresses, from the ledger, and every
// other question goes to the resolvers the node had before (or those
// DNSFORWARDSERVER names), as upstream's EdgeVPN DNS does. The protocol is
// miekg/dns's; only the answers are ours.
package dns

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// DefaultListen is where the server answers when DNSADDRESS names no
// address: the loopback, for the node itself.
const DefaultListen = "127.0.0.1:53"

// ttl is short: an address can move when two nodes claimed it.
const ttl = 30

// Server answers on UDP and TCP.
type Server struct {
	// Lookup is the VPN address of a node by hostname (lower case).
	Lookup func(host string) (netip.Addr, bool)
	// Forward are the resolvers asked the rest (host:port); none: the rest
	// is refused.
	Forward []string

	servers []*mdns.Server
	client  *mdns.Client
}

// Start listens on addr (host:port) and serves until Close.
func (s *Server) Start(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("DNS on %s: %w", addr, err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return fmt.Errorf("DNS on %s: %w", addr, err)
	}
	s.client = &mdns.Client{Timeout: 3 * time.Second}
	s.servers = []*mdns.Server{{PacketConn: pc, Handler: s}, {Listener: l, Handler: s}}
	for _, srv := range s.servers {
		go srv.ActivateAndServe()
	}
	return nil
}

// Addr is the address the server answers on.
func (s *Server) Addr() string { return s.servers[0].PacketConn.LocalAddr().String() }

// Close stops answering.
func (s *Server) Close() {
	for _, srv := range s.servers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		srv.ShutdownContext(ctx)
		cancel()
	}
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	if len(r.Question) != 1 || r.Opcode != mdns.OpcodeQuery {
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeNotImplemented)
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	if m, ok := s.answer(r, q); ok {
		w.WriteMsg(m)
		return
	}
	w.WriteMsg(s.forward(r, w.RemoteAddr().Network()))
}

// answer is the reply for a mesh hostname: a single label that names a
// node (A: its VPN address; any other type: no data).
func (s *Server) answer(r *mdns.Msg, q mdns.Question) (*mdns.Msg, bool) {
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	if name == "" || strings.Contains(name, ".") || q.Qclass != mdns.ClassINET {
		return nil, false
	}
	addr, ok := s.Lookup(name)
	if !ok {
		return nil, false
	}
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if q.Qtype == mdns.TypeA && addr.Is4() {
		m.Answer = append(m.Answer, &mdns.A{
			Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl},
			A:   addr.AsSlice(),
		})
	}
	return m, true
}

// forward asks the resolvers in turn; SERVFAIL when none answers.
func (s *Server) forward(r *mdns.Msg, network string) *mdns.Msg {
	c := *s.client
	if network == "tcp" {
		c.Net = "tcp"
	}
	for _, up := range s.Forward {
		if m, _, err := c.Exchange(r, up); err == nil {
			return m
		}
	}
	m := new(mdns.Msg)
	if len(s.Forward) == 0 {
		m.SetRcode(r, mdns.RcodeRefused)
	} else {
		m.SetRcode(r, mdns.RcodeServerFailure)
	}
	return m
}

// Header starts the resolv.conf ResolvConf writes.
const Header = "# Written by kairos-agent p2p run (p2p.dns: true)"

// Upstreams are the resolvers of a resolv.conf, as host:port, but self
// (this server's address).
func Upstreams(resolvConf []byte, self string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(resolvConf))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		if up := netip.AddrPortFrom(a, 53).String(); up != self {
			out = append(out, up)
		}
	}
	return out
}

// ResolvConf is a resolv.conf sending the node's questions to the server
// at listen, keeping the old file's search and options lines.
func ResolvConf(old []byte, listen string) ([]byte, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.IsUnspecified() {
		return nil, errors.New("the DNS address must be one the node can send to (not 0.0.0.0)")
	}
	var b strings.Builder
	b.WriteString(Header + ": the mesh's names, then the node's resolvers.\n")
	b.WriteString("nameserver " + a.String() + "\n")
	sc := bufio.NewScanner(bytes.NewReader(old))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "search ") || strings.HasPrefix(l, "options ") || strings.HasPrefix(l, "domain ") {
			b.WriteString(l + "\n")
		}
	}
	return []byte(b.String()), nil
}
