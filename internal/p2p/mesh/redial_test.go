package mesh

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A host mDNS announced whose first dial failed (it was still starting)
// is dialled again until connected: mDNS announces it once per record
// lifetime, which left two booting nodes apart for good.
func TestRedialsPeerMDNSFound(t *testing.T) {
	defer func(d time.Duration) { redialEvery = d }(redialEvery)
	redialEvery = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := testNetwork(t)
	key := func() crypto.PrivKey {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, err := Start(ctx, Config{Network: n, Identity: key(), Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	// B's address is known before B listens there.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	bKey := key()
	bID, err := peer.IDFromPrivateKey(bKey)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
	notifee{m: a, ctx: ctx}.HandlePeerFound(peer.AddrInfo{ID: bID, Addrs: []ma.Multiaddr{ma.StringCast(addr)}})
	time.Sleep(500 * time.Millisecond) // the first dial: refused

	// B is a bare host of the network, without discovery: only A's dial
	// can connect them.
	b, err := newHost(bKey, PSK(n, ""), []string{addr}, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for {
		if a.Host.Network().Connectedness(bID) == network.Connected {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("A never dialled B again: connectedness %v", a.Host.Network().Connectedness(bID))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
