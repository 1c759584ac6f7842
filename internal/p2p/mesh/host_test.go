package mesh

import (
	"net/netip"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/kairos-io/kairos/internal/p2p/token"
)

// The mesh never announces nor dials an address of its own VPN: a
// connection carrying the VPN must not run through it.
func TestOverlayKeepsOffTheVPN(t *testing.T) {
	o := overlay{vpn: netip.MustParsePrefix("10.1.0.0/24")}
	in := []ma.Multiaddr{
		ma.StringCast("/ip4/192.168.1.5/tcp/4001"),
		ma.StringCast("/ip4/10.1.0.7/tcp/4001"),
		ma.StringCast("/ip6/::ffff:10.1.0.9/tcp/4001"),
		ma.StringCast("/ip6/fe80::1/tcp/4001"),
	}
	got := o.addrs(in)
	if len(got) != 2 || !got[0].Equal(in[0]) || !got[1].Equal(in[3]) {
		t.Errorf("announced %v", got)
	}
	if o.InterceptAddrDial("", in[1]) || !o.InterceptAddrDial("", in[0]) {
		t.Error("dial gate")
	}
	if (overlay{}).inVPN(in[1]) {
		t.Error("no VPN: nothing is in it")
	}
}

// Hosts of one network meet under names derived from the token and the
// network id; another network id is another network.
func TestNamesAndKey(t *testing.T) {
	n := testNetwork(t)
	a, b := namesOf(n, ""), namesOf(n, "other")
	if a == b || string(PSK(n, "")) == string(PSK(n, "other")) {
		t.Error("network_id does not separate networks")
	}
	if len(a.mdns) > 63 {
		t.Errorf("mDNS name %q longer than a DNS label", a.mdns)
	}
}

func testNetwork(t *testing.T) token.Network {
	n, err := token.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
