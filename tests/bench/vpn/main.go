// Command vpn is a benchmark, not a test: the P2P mesh's VPN against the
// bare link under it, in one run. Two network namespaces joined by a veth
// pair each run the real agent (`kairos-agent p2p run`, VPN only, no
// roles); TCP throughput (one stream, 10 s) and round-trip time (TCP
// request/response of one byte) are measured over the veth addresses and
// over the VPN addresses, and printed with the ratios VPN/veth.
//
//	sudo go run ./tests/bench/vpn [-seconds 10]
//
// Target (issue 17): at least 300 Mbit/s through the VPN on the 2-core
// CI machine.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kairos-io/kairos/internal/p2p/node"
	"github.com/kairos-io/kairos/internal/p2p/token"
	"github.com/kairos-io/kairos/tests/netnsx"
)

func main() {
	seconds := flag.Int("seconds", 10, "how long each throughput run lasts")
	flag.Parse()
	if err := bench(time.Duration(*seconds) * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "vpn bench:", err)
		os.Exit(1)
	}
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func bench(d time.Duration) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root (network namespaces, TUN devices)")
	}
	work, err := os.MkdirTemp("", "kairos-vpn-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	agent := filepath.Join(work, "kairos-agent")
	if err := sh("go", "build", "-o", work+"/", "github.com/kairos-io/kairos/cmd/kairos-agent", "github.com/kairos-io/kairos/cmd/kairos-p2p"); err != nil {
		return err
	}
	ns := []string{fmt.Sprintf("kvb%da", os.Getpid()), fmt.Sprintf("kvb%db", os.Getpid())}
	for _, n := range ns {
		if err := sh("ip", "netns", "add", n); err != nil {
			return err
		}
		defer sh("ip", "netns", "del", n)
	}
	veth := []netip.Addr{netip.MustParseAddr("192.168.78.1"), netip.MustParseAddr("192.168.78.2")}
	if err := sh("ip", "-n", ns[0], "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", ns[1]); err != nil {
		return err
	}
	for i, n := range ns {
		for _, args := range [][]string{
			{"addr", "add", veth[i].String() + "/24", "dev", "eth0"}, {"link", "set", "eth0", "up"}, {"link", "set", "lo", "up"},
		} {
			if err := sh(append([]string{"ip", "-n", n}, args...)...); err != nil {
				return err
			}
		}
	}
	nw, err := token.Generate()
	if err != nil {
		return err
	}
	var roots []string
	for i, n := range ns {
		root := filepath.Join(work, fmt.Sprint("node", i))
		cfg := filepath.Join(work, fmt.Sprint("config", i, ".yaml"))
		doc := fmt.Sprintf("#cloud-config\nhostname: bench%d\np2p:\n  network_token: %q\n  disable_dht: true\n  auto:\n    enable: false\n", i, nw.Encode())
		if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
			return err
		}
		log, err := os.Create(filepath.Join(work, fmt.Sprint("log", i)))
		if err != nil {
			return err
		}
		cmd := exec.Command("ip", "netns", "exec", n, agent, "p2p", "run", "--config", cfg, "--root", root)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			return err
		}
		defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
		roots = append(roots, root)
	}
	// Both nodes up, each with the other's address routed.
	var vpn []netip.Addr
	deadline := time.Now().Add(60 * time.Second)
	for len(vpn) < 2 {
		vpn = vpn[:0]
		for _, r := range roots {
			data, err := os.ReadFile(filepath.Join(r, node.StatusFile))
			var st node.Status
			if err == nil && json.Unmarshal(data, &st) == nil && st.Address.IsValid() && len(st.Peers) == 1 && st.Peers[0].Connected {
				vpn = append(vpn, st.Address)
			}
		}
		if time.Now().After(deadline) {
			for i := range roots {
				log, _ := os.ReadFile(filepath.Join(work, fmt.Sprint("log", i)))
				st, _ := os.ReadFile(filepath.Join(roots[i], node.StatusFile))
				fmt.Fprintf(os.Stderr, "node %d log:\n%s\nstatus:\n%s\n", i, log, st)
			}
			return fmt.Errorf("the two nodes did not form a VPN in 60 s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the routes settle on both sides

	fmt.Printf("VPN benchmark: one TCP stream for %s, 2000 request/response round trips (GOMAXPROCS %d)\n\n", d, runtime.GOMAXPROCS(0))
	type result struct{ mbps, rtt float64 }
	measure := func(dst netip.Addr) (result, error) {
		var r result
		var err error
		if r.mbps, err = throughput(ns[0], ns[1], dst, d); err != nil {
			return r, err
		}
		r.rtt, err = roundTrip(ns[0], ns[1], dst, 2000)
		return r, err
	}
	bare, err := measure(veth[1])
	if err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	over, err := measure(vpn[1])
	if err != nil {
		return fmt.Errorf("VPN: %w", err)
	}
	fmt.Println("| path | throughput | round trip |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| veth (bare link) | %.0f Mbit/s | %.0f µs |\n", bare.mbps, bare.rtt)
	fmt.Printf("| VPN (edgevpn0 over libp2p) | %.0f Mbit/s | %.0f µs |\n", over.mbps, over.rtt)
	fmt.Printf("| ratio VPN/veth | %.3f | %.1f |\n", over.mbps/bare.mbps, over.rtt/bare.rtt)
	target := "met"
	if over.mbps < 300 {
		target = "NOT met"
	}
	fmt.Printf("\ntarget >= 300 Mbit/s through the VPN: %s\n", target)
	return nil
}

// listen opens a TCP listener in namespace ns (a socket stays in the
// namespace it was made in, whatever thread uses it later).
func listen(ns string, addr netip.Addr) (net.Listener, error) {
	var l net.Listener
	err := netnsx.Do(ns, func() (err error) {
		l, err = net.Listen("tcp", netip.AddrPortFrom(addr, 5201).String())
		return err
	})
	return l, err
}

func dial(ns string, addr netip.Addr) (net.Conn, error) {
	var c net.Conn
	err := netnsx.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(addr, 5201).String(), 10*time.Second)
		return err
	})
	return c, err
}

// throughput sends from ns a to dst (in ns b) for d; Mbit/s received.
func throughput(a, b string, dst netip.Addr, d time.Duration) (float64, error) {
	l, err := listen(b, dst)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- n
	}()
	c, err := dial(a, dst)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 128<<10)
	start := time.Now()
	for time.Since(start) < d {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, err
		}
	}
	c.Close()
	n := <-got
	return float64(n) * 8 / time.Since(start).Seconds() / 1e6, nil
}

// roundTrip is the mean time of a one-byte request and its answer, in µs.
func roundTrip(a, b string, dst netip.Addr, n int) (float64, error) {
	l, err := listen(b, dst)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		one := make([]byte, 1)
		for {
			if _, err := io.ReadFull(c, one); err != nil {
				return
			}
			if _, err := c.Write(one); err != nil {
				return
			}
		}
	}()
	c, err := dial(a, dst)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	one := []byte{1}
	start := time.Now()
	for range n {
		if _, err := c.Write(one); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(c, one); err != nil {
			return 0, err
		}
	}
	return float64(time.Since(start).Microseconds()) / float64(n), nil
}
