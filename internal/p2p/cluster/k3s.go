package cluster

import (
	"errors"
	"fmt"
	"net/netip"
)

// K3s is what a role makes of Kubernetes on a node: the service to run
// and the arguments and environment the mesh gives it (the cloud-config's
// k3s or k3s-agent block is merged over them: firstboot.Sysconfig).
type K3s struct {
	Unit string // k3s (server) or k3s-agent
	Args []string
	Env  map[string]string
}

// APIPort is the Kubernetes API port of k3s servers.
const APIPort = 6443

// K3sFor is the k3s of a node with role, VPN address self on interface
// iface, in a cluster whose masters have the VPN addresses masters (in
// join order: the first initialises it) and share token. Every address
// k3s uses is the VPN's, so nodes join over the mesh wherever they are.
// With ha, the first master runs --cluster-init (embedded etcd) and the
// other masters join it.
func K3sFor(role string, self netip.Addr, iface string, masters []netip.Addr, token string, ha bool) (K3s, error) {
	if token == "" {
		return K3s{}, errors.New("no cluster token")
	}
	if len(masters) == 0 {
		return K3s{}, errors.New("no master elected yet")
	}
	if !self.IsValid() {
		return K3s{}, errors.New("this node has no address for k3s yet")
	}
	base := []string{"--node-ip=" + self.String()}
	if iface != "" { // "": k3s picks the interface of --node-ip
		base = append(base, "--flannel-iface="+iface)
	}
	first := fmt.Sprintf("https://%s", netip.AddrPortFrom(masters[0], APIPort))
	switch role {
	case RoleMaster:
		k := K3s{Unit: "k3s", Args: append(base, "--tls-san="+self.String()), Env: map[string]string{"K3S_TOKEN": token}}
		switch {
		case masters[0] == self && ha:
			k.Args = append(k.Args, "--cluster-init")
		case masters[0] != self && ha:
			k.Args = append(k.Args, "--server="+first)
		case masters[0] != self:
			return K3s{}, fmt.Errorf("%s is a master but %s is the master and HA is off", self, masters[0])
		}
		return k, nil
	case RoleWorker:
		return K3s{Unit: "k3s-agent", Args: base, Env: map[string]string{"K3S_TOKEN": token, "K3S_URL": first}}, nil
	}
	return K3s{}, fmt.Errorf("role %q runs no k3s", role)
}
