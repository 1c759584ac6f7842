// Package netwait tells whether a node has the network a service such as
// k3s needs before it starts, a default route, and when it does not, why:
// what each interface lacks. A node without network must still boot to a
// login prompt; what waits for the network says so on the console instead
// of hanging silently behind network-online.target.
//
// Everything is read from the kernel's own tables: /proc/net/route and
// /proc/net/ipv6_route for routes, /sys/class/net for each interface's
// state, /proc/net/if_inet6 and the interface's IPv4 addresses for
// addresses.
package netwait

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Iface is one network interface as the kernel reports it.
type Iface struct {
	Name    string
	Oper    string // operstate: up, down, dormant, unknown, ...
	Carrier bool   // a link is detected
	Addrs   int    // global IPv4 and IPv6 addresses
}

// State is what the node's network looks like at one moment.
type State struct {
	// Route is the interface a default route goes through, "" when
	// there is none.
	Route  string
	Ifaces []Iface
}

// Ready says whether a service can reach beyond the node: there is a
// default route. k3s picks its node address from it, and refuses to
// start without one unless told an address.
func (s State) Ready() bool { return s.Route != "" }

// Why says what the node lacks, one clause per interface, for a person
// at the console: "no default route; eth0: no carrier; eth1: up, no
// address". Loopback is left out.
func (s State) Why() string {
	if s.Ready() {
		return "default route through " + s.Route
	}
	parts := []string{"no default route"}
	if len(s.Ifaces) == 0 {
		parts = append(parts, "no network interface (is a NIC and its driver present?)")
	}
	for _, i := range s.Ifaces {
		switch {
		case !i.Carrier && i.Oper != "up":
			parts = append(parts, i.Name+": no carrier (is a cable connected?)")
		case i.Addrs == 0:
			parts = append(parts, i.Name+": link up, no address (no DHCP answer yet?)")
		default:
			parts = append(parts, fmt.Sprintf("%s: %d address(es), no gateway", i.Name, i.Addrs))
		}
	}
	return strings.Join(parts, "; ")
}

// Reader reads a State from a node rooted at Proc and Sys.
type Reader struct {
	Proc string // /proc
	Sys  string // /sys
	// IPv4 counts an interface's global IPv4 addresses, which /proc does
	// not list; nil counts none (tests), System's asks the kernel.
	IPv4 func(name string) int
}

// Read takes a snapshot of the routes and interfaces.
func (r Reader) Read() (State, error) {
	var s State
	route, err := defaultRoute4(filepath.Join(r.Proc, "net/route"))
	if err != nil {
		return s, err
	}
	if route == "" {
		// A host without IPv6 has no such file: no IPv6 default route.
		if route, err = defaultRoute6(filepath.Join(r.Proc, "net/ipv6_route")); err != nil && !os.IsNotExist(err) {
			return s, err
		}
	}
	s.Route = route
	v6, err := globalAddrs6(filepath.Join(r.Proc, "net/if_inet6"))
	if err != nil && !os.IsNotExist(err) {
		return s, err
	}
	dir := filepath.Join(r.Sys, "class/net")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return s, fmt.Errorf("listing the network interfaces: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == "lo" {
			continue
		}
		i := Iface{Name: name, Oper: readTrim(filepath.Join(dir, name, "operstate")), Addrs: v6[name]}
		// Reading carrier fails on an interface that is down: no carrier.
		i.Carrier = readTrim(filepath.Join(dir, name, "carrier")) == "1"
		if r.IPv4 != nil {
			i.Addrs += r.IPv4(name)
		}
		s.Ifaces = append(s.Ifaces, i)
	}
	return s, nil
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// rtfUp and rtfReject are route flags of linux/route.h and
// linux/ipv6_route.h.
const (
	rtfUp     = 0x0001
	rtfReject = 0x0200
)

// defaultRoute4 finds a usable IPv4 default route in /proc/net/route:
// "Iface Destination Gateway Flags RefCnt Use Metric Mask ..." in hex.
func defaultRoute4(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the routes: %w", err)
	}
	defer f.Close()
	return parseRoute4(f)
}

func parseRoute4(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		return f[0], nil
	}
	return "", sc.Err()
}

// defaultRoute6 finds a usable IPv6 default route in /proc/net/ipv6_route:
// "dest destlen src srclen nexthop metric refcnt use flags iface", the
// default being ::/0 (the kernel's own unreachable ::/0 on lo is not).
func defaultRoute6(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return parseRoute6(f)
}

func parseRoute6(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[0] != strings.Repeat("0", 32) || f[1] != "00" || f[9] == "lo" {
			continue
		}
		flags, err := strconv.ParseUint(f[8], 16, 32)
		if err != nil || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		return f[9], nil
	}
	return "", sc.Err()
}

// globalAddrs6 counts each interface's global IPv6 addresses in
// /proc/net/if_inet6: "addr ifindex prefixlen scope flags name", scope 00
// being global (link-local fe80:: addresses do not reach a gateway).
func globalAddrs6(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseAddrs6(f)
}

func parseAddrs6(r io.Reader) (map[string]int, error) {
	n := map[string]int{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 6 && f[3] == "00" {
			n[f[5]]++
		}
	}
	return n, sc.Err()
}

// Wait polls read every poll until the state is Ready or ctx ends, and
// tells say what it waits for: once at the start (only when it has to
// wait), every report interval after that, and once the network is up.
// It returns the last state read; ctx's error when it ended first.
func Wait(ctx context.Context, read func() (State, error), poll, report time.Duration, say func(waited time.Duration, s State)) (State, error) {
	start := time.Now()
	var last time.Time
	waited := false
	for {
		s, err := read()
		if err != nil {
			return s, err
		}
		if s.Ready() {
			if waited {
				say(time.Since(start), s)
			}
			return s, nil
		}
		if !waited || time.Since(last) >= report {
			say(time.Since(start), s)
			waited, last = true, time.Now()
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(poll):
		}
	}
}
