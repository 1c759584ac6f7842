package dns

import (
	"net/netip"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

func ask(t *testing.T, addr, network, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: network}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", network, name, err)
	}
	return r
}

func TestServer(t *testing.T) {
	// The resolver the node had: it knows example.com.
	up := &Server{Lookup: func(h string) (netip.Addr, bool) { return netip.Addr{}, false }}
	upstream := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == "example.com." {
			rr, _ := mdns.NewRR("example.com. 60 IN A 192.0.2.7")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	for _, srv := range up.servers {
		srv.Handler = upstream
	}

	mesh := map[string]netip.Addr{"node2": netip.MustParseAddr("10.1.0.5")}
	s := &Server{Lookup: func(h string) (netip.Addr, bool) { a, ok := mesh[h]; return a, ok }, Forward: []string{up.Addr()}}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	for _, network := range []string{"udp", "tcp"} {
		r := ask(t, s.Addr(), network, "NODE2.", mdns.TypeA)
		if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "10.1.0.5" || !r.Authoritative {
			t.Errorf("%s node2: %v", network, r)
		}
		if r := ask(t, s.Addr(), network, "node2.", mdns.TypeAAAA); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
			t.Errorf("%s node2 AAAA: %v", network, r)
		}
		if r := ask(t, s.Addr(), network, "example.com.", mdns.TypeA); len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "192.0.2.7") {
			t.Errorf("%s forwarded: %v", network, r)
		}
		if r := ask(t, s.Addr(), network, "node9.", mdns.TypeA); r.Rcode != mdns.RcodeNameError {
			t.Errorf("%s unknown single label, forwarded: %v", network, r)
		}
	}
	// No resolver to forward to: refused, not a lie.
	s.Forward = nil
	if r := ask(t, s.Addr(), "udp", "example.com.", mdns.TypeA); r.Rcode != mdns.RcodeRefused {
		t.Errorf("no forwarders: %v", r)
	}
}

func TestResolvConf(t *testing.T) {
	old := []byte("# from DHCP\nnameserver 192.168.1.1\nnameserver 127.0.0.53\nnameserver 127.0.0.1\nnameserver fe80::1%eth0\nsearch lan example.org\noptions edns0\n")
	if got := Upstreams(old, "127.0.0.1:53"); strings.Join(got, ",") != "192.168.1.1:53,127.0.0.53:53,[fe80::1%eth0]:53" {
		t.Errorf("upstreams %v", got)
	}
	got, err := ResolvConf(old, "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "\nnameserver 127.0.0.1\nsearch lan example.org\noptions edns0\n") || strings.Contains(string(got), "192.168.1.1") {
		t.Errorf("resolv.conf:\n%s", got)
	}
	if _, err := ResolvConf(old, "0.0.0.0:53"); err == nil {
		t.Error("0.0.0.0 accepted as the node's resolver")
	}
}
