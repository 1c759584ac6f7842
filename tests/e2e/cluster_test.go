//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/p2p/node"
	"github.com/kairos-io/kairos/internal/p2p/token"
	"github.com/kairos-io/kairos/tests/qemu"
)

// clusterUserData is a node of a P2P cluster: the same for every node but
// the hostname. The nodes' LAN has no DHCP server, as many edge switches
// do not: a .network file gives its interfaces link-local addresses
// (IPv4LL), the same file on every node.
func clusterUserData(hostname, tok string) string {
	return fmt.Sprintf(`#cloud-config
hostname: %s
install:
  auto: true
  device: /dev/vda
  reboot: true
users:
  - name: tester
    passwd: e2e-Pass
    groups: [admin]
p2p:
  network_token: %q
stages:
  initramfs:
    - name: link-local addresses on a LAN without DHCP
      files:
        - path: /etc/systemd/network/10-lan.network
          permissions: 0644
          content: |
            [Match]
            Name=en* eth*
            [Network]
            DHCP=yes
            LinkLocalAddressing=yes
`, hostname, tok)
}

// Two nodes auto-installed from one ISO with configs sharing a network
// token, booted together on one virtual LAN (QEMU's multicast socket
// network), form a cluster: each sees the other, the VPN carries traffic
// between them, one runs k3s server on its VPN address and the other
// k3s agent pointed at it with the same token (the k3s test double
// records both). Issue 17, proof 2.
func TestCluster(t *testing.T) {
	slow(t)
	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Minute)
	defer cancel()
	f := newGatewayFixture(t, gatewayVersion, false)
	out := t.TempDir()
	f.buildctl(t, "iso", "type=local,dest="+out)
	iso := filepath.Join(out, f.artifactName()+".iso")
	verifyChecksum(t, iso)

	nw, err := token.Generate()
	must(t, err)
	tok := nw.Encode()
	names := []string{"edge-a", "edge-b"}
	var disks []string
	for _, name := range names {
		disks = append(disks, autoInstall(ctx, t, qemu.UEFI, iso, cidataISO(t, clusterUserData(name, tok))))
	}

	// Booted together, each with a second NIC on the shared LAN
	// (loopback-bound multicast: nothing leaves the machine).
	lan := fmt.Sprintf("socket,id=lan,mcast=230.0.0.1:%d,localaddr=127.0.0.1", 20000+os.Getpid()%20000)
	var machines []*qemu.Machine
	for i, disk := range disks {
		m, err := qemu.Start(qemu.Options{Firmware: qemu.UEFI, Disks: []string{disk}, LogPath: logPath(t) + "." + names[i],
			Extra: []string{"-netdev", lan, "-device", fmt.Sprintf("virtio-net-pci,netdev=lan,mac=52:54:00:4b:00:%02x", i+1)}})
		must(t, err)
		t.Cleanup(m.Stop)
		t.Logf("%s serial log: %s", names[i], m.LogPath())
		machines = append(machines, m)
	}
	var shells []func(string) string
	for i, m := range machines {
		if err := m.Login(ctx, "tester", "e2e-Pass", 10*time.Minute); err != nil {
			t.Fatalf("%s: login: %v", names[i], err)
		}
		m.Run(ctx, "sudo dmesg -n 1", time.Minute)
		shells = append(shells, shell(ctx, t, m))
	}

	// Each node's view, once both have a role.
	status := make([]node.Status, 2)
	deadline := time.Now().Add(8 * time.Minute)
	for i, sh := range shells {
		for {
			raw := sh("sudo kairos-agent p2p status --output json 2>/dev/null || true")
			var st node.Status
			if json.Unmarshal([]byte(raw), &st) == nil && st.Role != "" && len(st.Peers) == 1 && st.Peers[0].Hostname == names[1-i] {
				status[i] = st
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no cluster after 8 minutes; status:\n%s\nservice:\n%s", names[i], raw,
					sh("sudo systemctl status --no-pager edgevpn@kairos 2>&1 | tail -30 || true"))
			}
			time.Sleep(5 * time.Second)
		}
		t.Logf("%s: %s, %s on %s", names[i], status[i].Role, status[i].Address, status[i].Interface)
	}
	if status[0].Address == status[1].Address || !status[0].Address.IsValid() {
		t.Fatalf("VPN addresses %s and %s", status[0].Address, status[1].Address)
	}
	// The status command's text form names the other node too.
	if got := shells[0]("sudo kairos-agent p2p status"); !strings.Contains(got, names[1]) {
		t.Errorf("p2p status on %s:\n%s", names[0], got)
	}
	// The environment file start wrote: 0600, the token in it.
	if got := shells[0]("sudo stat -c %a /etc/systemd/system.conf.d/edgevpn-kairos.env"); got != "600" {
		t.Errorf("edgevpn-kairos.env mode %s", got)
	}

	// The VPN carries traffic both ways.
	for i, sh := range shells {
		to := status[1-i].Address.String()
		sh(fmt.Sprintf("ping -c 3 -W 5 %s >/dev/null 2>&1 || timeout 20 bash -c 'exec 3<>/dev/tcp/%s/22'", to, to))
	}

	// One master, one worker; k3s server on the master's VPN address,
	// k3s agent pointed at it with the same token.
	mi, wi := 0, 1
	if status[1].Role == "master" {
		mi, wi = 1, 0
	}
	if status[mi].Role != "master" || status[wi].Role != "worker" {
		t.Fatalf("roles %s and %s, want one master and one worker", status[0].Role, status[1].Role)
	}
	ma, wa := status[mi].Address.String(), status[wi].Address.String()
	k3sRan := func(sh func(string) string) (args string, env map[string]string) {
		args = sh("timeout 180 sh -c 'until test -s /var/lib/rancher/k3s/kairos-e2e-args; do sleep 1; done'; cat /var/lib/rancher/k3s/kairos-e2e-args")
		env = map[string]string{}
		for _, l := range strings.Split(sh("sudo cat /var/lib/rancher/k3s/kairos-e2e-env"), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				env[k] = v
			}
		}
		return args, env
	}
	margs, menv := k3sRan(shells[mi])
	wargs, wenv := k3sRan(shells[wi])
	if want := fmt.Sprintf("server --node-ip=%s --flannel-iface=edgevpn0 --tls-san=%s", ma, ma); margs != want {
		t.Errorf("the master's k3s ran %q, want %q", margs, want)
	}
	if want := fmt.Sprintf("agent --node-ip=%s --flannel-iface=edgevpn0", wa); wargs != want {
		t.Errorf("the worker's k3s ran %q, want %q", wargs, want)
	}
	if wenv["K3S_URL"] != "https://"+ma+":6443" {
		t.Errorf("the worker's K3S_URL is %q, want https://%s:6443", wenv["K3S_URL"], ma)
	}
	if menv["K3S_TOKEN"] == "" || wenv["K3S_TOKEN"] != menv["K3S_TOKEN"] {
		t.Error("the worker's K3S_TOKEN is not the master's")
	}
	t.Logf("master %s: k3s %s; worker %s: k3s %s, K3S_URL=%s", names[mi], margs, names[wi], wargs, wenv["K3S_URL"])
}
