// Package mesh proves the P2P cluster with the real agent binary: nodes
// in their own network namespaces on one bridge (nothing else reachable),
// each running `kairos-agent p2p run --config --root`, found by mDNS,
// joined by the VPN, roles elected, k3s configured (issue 17, proof 1).
package mesh

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/p2p/node"
	"github.com/kairos-io/kairos/internal/p2p/token"
	"github.com/kairos-io/kairos/tests/netnsx"
)

var (
	agentOnce sync.Once
	agentPath string
	agentErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if agentPath != "" {
		os.RemoveAll(filepath.Dir(agentPath))
	}
	os.Exit(code)
}

// agent is the kairos-agent binary, with kairos-p2p beside it, built once
// for the package.
func agent(t *testing.T) string {
	t.Helper()
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kairos-mesh-agent")
		if err != nil {
			agentErr = err
			return
		}
		// `kairos-agent p2p` runs the mesh's program beside it.
		agentPath = filepath.Join(dir, "kairos-agent")
		out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/kairos-io/kairos/cmd/kairos-agent", "github.com/kairos-io/kairos/cmd/kairos-p2p").CombinedOutput()
		if err != nil {
			agentErr = fmt.Errorf("building the agent and kairos-p2p: %v\n%s", err, out)
		}
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentPath
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lan is a bridge in a namespace of its own, and the nodes' namespaces
// plugged into it.
type lan struct {
	t      *testing.T
	prefix string // of every namespace name, unique per run
	n      int
}

func newLAN(t *testing.T) *lan {
	if os.Geteuid() != 0 {
		t.Fatal("the mesh test makes network namespaces and TUN devices: run as root")
	}
	l := &lan{t: t, prefix: fmt.Sprintf("km%d", os.Getpid()%100000)}
	run(t, "ip", "netns", "add", l.prefix+"br")
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.prefix+"br").Run() })
	run(t, "ip", "-n", l.prefix+"br", "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", l.prefix+"br", "link", "set", "br0", "up")
	return l
}

// host is a new namespace on the LAN with address 192.168.77.<n>.
func (l *lan) host() string {
	t := l.t
	l.n++
	ns := fmt.Sprintf("%sn%d", l.prefix, l.n)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	veth := fmt.Sprintf("v%d", l.n)
	run(t, "ip", "-n", l.prefix+"br", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	run(t, "ip", "-n", l.prefix+"br", "link", "set", veth, "master", "br0", "up")
	run(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("192.168.77.%d/24", l.n), "dev", "eth0")
	run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// meshNode is one `kairos-agent p2p run`.
type meshNode struct {
	t    *testing.T
	name string
	ns   string
	root string
	cfg  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exits
	log  string
}

func (l *lan) node(name, config string) *meshNode {
	dir := l.t.TempDir()
	n := &meshNode{t: l.t, name: name, ns: l.host(), root: filepath.Join(dir, "root"), cfg: filepath.Join(dir, "config.yaml")}
	if err := os.WriteFile(n.cfg, []byte(config), 0o600); err != nil {
		l.t.Fatal(err)
	}
	n.start()
	l.t.Cleanup(n.stop)
	return n
}

func (n *meshNode) start() {
	os.Remove(filepath.Join(n.root, node.StatusFile)) // a status read later is the new process's
	n.log = filepath.Join(filepath.Dir(n.cfg), fmt.Sprintf("log-%d", time.Now().UnixNano()))
	f, err := os.Create(n.log)
	if err != nil {
		n.t.Fatal(err)
	}
	n.cmd = exec.Command("ip", "netns", "exec", n.ns, agent(n.t), "p2p", "run", "--config", n.cfg, "--root", n.root)
	n.cmd.Stdout, n.cmd.Stderr = f, f
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	f.Close()
	done, cmd := make(chan struct{}), n.cmd
	n.done = done
	go func() { cmd.Wait(); close(done) }()
}

// restart stops the node and starts it again, until it has its role.
func (n *meshNode) restart() {
	n.stop()
	n.start()
	eventually(n.t, 30*time.Second, n.name+" is back", func() bool { n.alive(); return n.status().Role != "" })
}

// alive fails the test when the node's process has exited.
func (n *meshNode) alive() {
	select {
	case <-n.done:
		data, _ := os.ReadFile(n.log)
		n.t.Fatalf("%s exited:\n%s", n.name, data)
	default:
	}
}

func (n *meshNode) stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
	n.cmd = nil
	if n.t.Failed() {
		data, _ := os.ReadFile(n.log)
		n.t.Logf("%s's log:\n%s", n.name, data)
	}
}

// status is `kairos-agent p2p status --output json` of the node.
func (n *meshNode) status() node.Status {
	n.t.Helper()
	out, err := exec.Command(agent(n.t), "p2p", "status", "--root", n.root, "--output", "json").Output()
	var st node.Status
	if err == nil {
		err = json.Unmarshal(out, &st)
	}
	if err != nil {
		return node.Status{}
	}
	return st
}

// sysconfig is what the node's role wrote for unit ("" when nothing).
func (n *meshNode) sysconfig(unit string) string {
	data, err := os.ReadFile(filepath.Join(n.root, "etc/sysconfig", unit))
	if err != nil {
		return ""
	}
	fi, _ := os.Stat(filepath.Join(n.root, "etc/sysconfig", unit))
	if fi.Mode().Perm() != 0o600 {
		n.t.Errorf("%s: /etc/sysconfig/%s has mode %o, want 0600 (it holds the token)", n.name, unit, fi.Mode().Perm())
	}
	return string(data)
}

func (n *meshNode) k3s() string {
	if s := n.sysconfig("k3s"); s != "" {
		return s
	}
	return n.sysconfig("k3s-agent")
}

func eventually(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func config(host, tok, extra string) string {
	return fmt.Sprintf("#cloud-config\nhostname: %s\np2p:\n  network_token: %q\n%s", host, tok, extra)
}

func newToken(t *testing.T) string {
	return strings.TrimSpace(run(t, agent(t), "p2p", "generate-token"))
}

var envLine = regexp.MustCompile(`(?m)^(\w+)="(.*)"$`)

func env(sysconfig string) map[string]string {
	m := map[string]string{}
	for _, g := range envLine.FindAllStringSubmatch(sysconfig, -1) {
		m[g[1]] = g[2]
	}
	return m
}

// The whole life of a three-node cluster, an HA one beside it and a node
// with another token on the same LAN.
func TestMesh(t *testing.T) {
	l := newLAN(t)
	tok, haTok := newToken(t), newToken(t)
	// The intruder's token has the same names (mDNS, room, rendezvous) and
	// other secrets: it finds the nodes and tries to connect, and the
	// private network's handshake must refuse it.
	nw, err := token.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	other, err := token.Generate()
	if err != nil {
		t.Fatal(err)
	}
	nw.OTP = other.OTP
	otherTok := nw.Encode()
	nodes := []*meshNode{
		l.node("node1", config("node1", tok, "  dns: true\n")),
		l.node("node2", config("node2", tok, "")),
		l.node("node3", config("node3", tok, "")),
	}
	ha := []*meshNode{
		l.node("ha1", config("ha1", haTok, "  auto:\n    ha:\n      enable: true\n      master_nodes: 2\n")),
		l.node("ha2", config("ha2", haTok, "  auto:\n    ha:\n      enable: true\n      master_nodes: 2\n")),
		l.node("ha3", config("ha3", haTok, "  auto:\n    ha:\n      enable: true\n      master_nodes: 2\n")),
	}
	// A node carrying the VPN only, in the HA cluster: never elected,
	// whatever its ID.
	vpnOnly := l.node("vpnonly", config("vpnonly", haTok, "  auto:\n    enable: false\n"))
	intruder := l.node("intruder", config("intruder", otherTok, "  minimum_nodes: 1\n"))

	for _, n := range append(slices.Clone(nodes), ha...) {
		eventually(t, 90*time.Second, n.name+" has a role and its k3s configuration", func() bool {
			n.alive()
			return n.status().Role != "" && n.k3s() != ""
		})
	}

	t.Run("one master, workers pointing at it", func(t *testing.T) {
		addrs := map[netip.Addr]string{}
		var master *meshNode
		for _, n := range nodes {
			st := n.status()
			if other, dup := addrs[st.Address]; dup || !st.Address.IsValid() {
				t.Errorf("%s has address %s (also %s's)", n.name, st.Address, other)
			}
			addrs[st.Address] = n.name
			if len(st.Peers) != 2 {
				t.Errorf("%s sees %d peers, want 2: %+v", n.name, len(st.Peers), st.Peers)
			}
			if st.Role == "master" {
				if master != nil {
					t.Fatalf("two masters: %s and %s", master.name, n.name)
				}
				master = n
			}
		}
		if master == nil {
			t.Fatal("no master")
		}
		ma := master.status().Address
		srv := master.sysconfig("k3s")
		if !strings.Contains(srv, "--node-ip="+ma.String()) || !strings.Contains(srv, "--flannel-iface=edgevpn0") ||
			!strings.Contains(srv, "--tls-san="+ma.String()) || strings.Contains(srv, "--cluster-init") {
			t.Errorf("master's /etc/sysconfig/k3s:\n%s", srv)
		}
		token := env(srv)["K3S_TOKEN"]
		if len(token) < 32 || strings.Contains(tok, token) {
			t.Errorf("the cluster token %q: want one derived from the network token, not in it", token)
		}
		for _, n := range nodes {
			if n == master {
				continue
			}
			a := n.sysconfig("k3s-agent")
			e := env(a)
			if e["K3S_URL"] != "https://"+ma.String()+":6443" || e["K3S_TOKEN"] != token ||
				!strings.Contains(a, "--node-ip="+n.status().Address.String()) || !strings.Contains(a, "--flannel-iface=edgevpn0") {
				t.Errorf("%s's /etc/sysconfig/k3s-agent (master %s):\n%s", n.name, ma, a)
			}
			if n.sysconfig("k3s") != "" {
				t.Errorf("%s is a worker with a k3s server configuration", n.name)
			}
		}
	})

	t.Run("ping across the VPN between every pair", func(t *testing.T) {
		for _, a := range nodes {
			for _, b := range nodes {
				if a == b {
					continue
				}
				if err := ping(a.ns, b.status().Address, 5); err != nil {
					t.Errorf("%s -> %s: %v", a.name, b.name, err)
				}
			}
		}
	})

	t.Run("p2p.dns: the mesh's hostnames resolve to VPN addresses", func(t *testing.T) {
		if conf, _ := os.ReadFile(filepath.Join(nodes[0].root, "etc/resolv.conf")); !strings.Contains(string(conf), "\nnameserver 127.0.0.1\n") {
			t.Errorf("node1's resolv.conf:\n%s", conf)
		}
		for _, other := range nodes[1:] {
			var got string
			err := netnsx.Do(nodes[0].ns, func() error {
				m := new(dns.Msg)
				m.SetQuestion(other.name+".", dns.TypeA)
				r, err := dns.Exchange(m, "127.0.0.1:53")
				if err == nil && len(r.Answer) == 1 {
					got = r.Answer[0].(*dns.A).A.String()
				}
				return err
			})
			if err != nil || got != other.status().Address.String() {
				t.Errorf("%s resolved to %q (%v), want %s", other.name, got, err, other.status().Address)
			}
		}
	})

	t.Run("HA: two masters, the first initialises the cluster", func(t *testing.T) {
		var first, second *meshNode
		var workers []*meshNode
		for _, n := range ha {
			srv := n.sysconfig("k3s")
			switch {
			case strings.Contains(srv, "--cluster-init"):
				if first != nil {
					t.Fatalf("--cluster-init on %s and %s", first.name, n.name)
				}
				first = n
			case srv != "":
				second = n
			default:
				workers = append(workers, n)
			}
		}
		if first == nil || second == nil || len(workers) != 1 {
			t.Fatalf("first master %v, second %v, workers %d", first, second, len(workers))
		}
		url := "https://" + first.status().Address.String() + ":6443"
		if s := second.sysconfig("k3s"); !strings.Contains(s, "--server="+url) {
			t.Errorf("second master's /etc/sysconfig/k3s does not join %s:\n%s", url, s)
		}
		if e := env(workers[0].sysconfig("k3s-agent")); e["K3S_URL"] != url {
			t.Errorf("the HA worker's K3S_URL is %q, want %s", e["K3S_URL"], url)
		}
		if st := vpnOnly.status(); st.Role != "none" || vpnOnly.k3s() != "" || len(st.Peers) != 3 {
			t.Errorf("the VPN-only node: role %q, %d peers, k3s %q", st.Role, len(st.Peers), vpnOnly.k3s())
		}
		if err := ping(vpnOnly.ns, first.status().Address, 5); err != nil {
			t.Errorf("the VPN-only node cannot reach the first master: %v", err)
		}
	})

	t.Run("another token never joins", func(t *testing.T) {
		st := intruder.status()
		if log, _ := os.ReadFile(intruder.log); !regexp.MustCompile(`mDNS peer \S+: not connected`).Match(log) {
			t.Errorf("the intruder never tried to connect (the test proves nothing):\n%s", log)
		}
		if len(st.Peers) != 0 {
			t.Errorf("the intruder learnt of %+v", st.Peers)
		}
		for _, n := range append(slices.Clone(nodes), ha...) {
			for _, p := range n.status().Peers {
				if p.Peer == st.Peer {
					t.Errorf("%s knows the intruder", n.name)
				}
			}
		}
		for _, n := range nodes {
			if n.status().Address == st.Address {
				continue // it claimed the same address in its own network: that is itself
			}
			if err := ping(intruder.ns, n.status().Address, 1); err == nil {
				t.Errorf("the intruder reached %s over the VPN", n.name)
			}
		}
	})

	// Roles before the changes below.
	before := map[string]node.Status{}
	k3s := map[string]string{}
	for _, n := range nodes {
		before[n.name] = n.status()
		k3s[n.name] = n.k3s()
	}

	t.Run("the master stopped: nobody's role changes", func(t *testing.T) {
		var master *meshNode
		for _, n := range nodes {
			if before[n.name].Role == "master" {
				master = n
			}
		}
		master.stop()
		time.Sleep(15 * time.Second) // three heartbeats, and more than the settle time
		// A worker restarted while the master is away still knows it.
		for _, n := range nodes {
			if n != master {
				n.restart()
				time.Sleep(3 * time.Second)
				break
			}
		}
		for _, n := range nodes {
			if n == master {
				continue
			}
			st := n.status()
			if st.Role != before[n.name].Role || !slices.Equal(st.Masters, before[n.name].Masters) || n.k3s() != k3s[n.name] {
				t.Errorf("%s changed: role %s -> %s, masters %v -> %v", n.name, before[n.name].Role, st.Role, before[n.name].Masters, st.Masters)
			}
		}
		master.start()
	})

	t.Run("a node restarted keeps its role and address", func(t *testing.T) {
		var worker *meshNode
		for _, n := range nodes {
			if before[n.name].Role == "worker" {
				worker = n
			}
		}
		worker.restart()
		st := worker.status()
		if st.Peer != before[worker.name].Peer || st.Address != before[worker.name].Address || st.Role != "worker" || worker.k3s() != k3s[worker.name] {
			t.Errorf("after a restart: %+v, before %+v", st, before[worker.name])
		}
	})
}

// ping sends ICMP echo requests from namespace ns to addr and waits for a
// reply (raw sockets: no ping tool needed).
func ping(ns string, addr netip.Addr, tries int) error {
	return netnsx.Do(ns, func() error { return echo(addr, tries) })
}

func echo(addr netip.Addr, tries int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	to := &unix.SockaddrInet4{Addr: addr.As4()}
	id := uint16(os.Getpid())
	for seq := uint16(1); seq <= uint16(tries); seq++ {
		req := make([]byte, 16)
		req[0] = 8 // echo request
		binary.BigEndian.PutUint16(req[4:], id)
		binary.BigEndian.PutUint16(req[6:], seq)
		copy(req[8:], "kairos!!")
		binary.BigEndian.PutUint16(req[2:], checksum(req))
		if err := unix.Sendto(fd, req, 0, to); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				break
			}
			f, ok := from.(*unix.SockaddrInet4)
			if !ok || f.Addr != addr.As4() || n < 28 {
				continue
			}
			ihl := int(buf[0]&0xf) * 4
			icmp := buf[ihl:n]
			if len(icmp) >= 16 && icmp[0] == 0 && binary.BigEndian.Uint16(icmp[4:]) == id && bytes.Equal(icmp[8:16], []byte("kairos!!")) {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo reply from %s", addr)
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
