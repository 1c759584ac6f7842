package netwait

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Tables as a QEMU guest with user networking shows them.
const (
	route4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t0202000A\t0003\t0\t0\t1024\t00000000\t0\t0\t0\n" +
		"eth0\t0002000A\t00000000\t0001\t0\t0\t1024\t00FFFFFF\t0\t0\t0\n"
	route4NoDefault = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t0002000A\t00000000\t0001\t0\t0\t1024\t00FFFFFF\t0\t0\t0\n"
	// The kernel's own unreachable ::/0 through lo, and fe80::/64.
	route6Lo = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n" +
		"fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
	route6Default = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000002 00000400 00000001 00000000 00000003     eth1\n"
	inet6         = "fe80000000000000505400fffe123456 02 40 20 80     eth0\n" +
		"fec00000000000005054 03 40 00 00     eth1\n"
)

func TestParseRoutes(t *testing.T) {
	for _, c := range []struct {
		name, table string
		six         bool
		want        string
	}{
		{"ipv4 default", route4, false, "eth0"},
		{"ipv4 none", route4NoDefault, false, ""},
		{"ipv4 empty", "", false, ""},
		{"ipv4 rejected", strings.Replace(route4, "0003", "0201", 1), false, ""},
		{"ipv4 down", strings.Replace(route4, "0003", "0002", 1), false, ""},
		{"ipv6 lo unreachable", route6Lo, true, ""},
		{"ipv6 default", route6Lo + route6Default, true, "eth1"},
	} {
		parse := parseRoute4
		if c.six {
			parse = parseRoute6
		}
		got, err := parse(strings.NewReader(c.table))
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestParseAddrs6(t *testing.T) {
	n, err := parseAddrs6(strings.NewReader(inet6 + "short line\n"))
	if err != nil || n["eth0"] != 0 || n["eth1"] != 1 {
		t.Errorf("%v, %v; want eth1 only (eth0 is link-local)", n, err)
	}
}

// node writes a /proc and /sys for Read.
func node(t *testing.T, route string, ifaces map[string][2]string) Reader {
	root := t.TempDir()
	write := func(p, data string) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/net/route", route)
	write("proc/net/if_inet6", inet6)
	write("sys/class/net/lo/operstate", "unknown\n")
	for name, st := range ifaces {
		write("sys/class/net/"+name+"/operstate", st[0]+"\n")
		if st[1] != "" {
			write("sys/class/net/"+name+"/carrier", st[1]+"\n")
		}
	}
	return Reader{Proc: filepath.Join(root, "proc"), Sys: filepath.Join(root, "sys")}
}

func TestReadAndWhy(t *testing.T) {
	r := node(t, route4NoDefault, map[string][2]string{"eth0": {"up", "1"}, "eth1": {"down", ""}, "eth2": {"up", "1"}})
	r.IPv4 = func(name string) int {
		if name == "eth2" {
			return 1
		}
		return 0
	}
	s, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if s.Ready() {
		t.Fatal("ready without a default route")
	}
	// No ipv6_route file: a kernel without IPv6.
	want := "no default route; eth0: link up, no address (no DHCP answer yet?); eth1: no carrier (is a cable connected?); eth2: 1 address(es), no gateway"
	if got := s.Why(); got != want {
		t.Errorf("Why() = %q\nwant      %q", got, want)
	}

	r = node(t, route4, map[string][2]string{"eth0": {"up", "1"}})
	if s, err = r.Read(); err != nil || !s.Ready() || s.Why() != "default route through eth0" {
		t.Errorf("%+v, %v: want ready through eth0", s, err)
	}

	if got := (State{}).Why(); !strings.Contains(got, "no network interface") {
		t.Errorf("no interfaces: %q", got)
	}
	if _, err := (Reader{Proc: t.TempDir(), Sys: t.TempDir()}).Read(); err == nil {
		t.Error("no /proc/net/route read without an error")
	}
}

func TestWait(t *testing.T) {
	down := State{Ifaces: []Iface{{Name: "eth0", Oper: "down"}}}
	up := State{Route: "eth0"}

	// Ready at once: not a word.
	var said []State
	say := func(_ time.Duration, s State) { said = append(said, s) }
	if _, err := Wait(context.Background(), func() (State, error) { return up, nil }, time.Millisecond, time.Hour, say); err != nil || len(said) != 0 {
		t.Fatalf("ready at once: %v, said %d times", err, len(said))
	}

	// Down three polls, then up: said once waiting (report interval not
	// reached), once up.
	n := 0
	read := func() (State, error) {
		n++
		if n > 3 {
			return up, nil
		}
		return down, nil
	}
	s, err := Wait(context.Background(), read, time.Millisecond, time.Hour, say)
	if err != nil || !s.Ready() || len(said) != 2 || said[0].Ready() || !said[1].Ready() {
		t.Fatalf("%+v, %v, said %+v", s, err, said)
	}

	// Never up: the context ends it, with the last state; said again at
	// each report interval.
	said = nil
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s, err = Wait(ctx, func() (State, error) { return down, nil }, time.Millisecond, 10*time.Millisecond, say)
	if !errors.Is(err, context.DeadlineExceeded) || s.Ready() || len(said) < 2 {
		t.Fatalf("%+v, %v, said %d times", s, err, len(said))
	}

	// A read error ends it.
	boom := errors.New("boom")
	if _, err := Wait(context.Background(), func() (State, error) { return State{}, boom }, time.Millisecond, time.Hour, say); !errors.Is(err, boom) {
		t.Fatalf("read error: %v", err)
	}
}
