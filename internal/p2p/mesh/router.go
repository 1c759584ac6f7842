package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kairos-io/kairos/internal/p2p/vpn"
)

// VPNProtocol is the stream protocol carrying the VPN's packets: one
// stream per direction and pair of hosts, packets framed by vpn.WriteFrame.
const VPNProtocol = "/kairos/vpn/1.0.0"

// linkRetry is how long packets to a peer that could not be reached are
// dropped before the link is tried again.
const linkRetry = 15 * time.Second

// queueLen is how many packets wait for one peer before new ones are
// dropped, as a NIC's queue does; TCP above notices and slows down.
const queueLen = 512

// Routes is what the router knows of the VPN's addresses, from the ledger.
type Routes interface {
	// Self is this node's VPN address (invalid until it has one).
	Self() netip.Addr
	// PeerOf is the host holding a VPN address.
	PeerOf(addr netip.Addr) (peer.ID, bool)
	// AddrOf is the VPN address a host holds.
	AddrOf(id peer.ID) (netip.Addr, bool)
}

// Router moves packets between the TUN device and the mesh.
type Router struct {
	host   host.Host
	dev    io.ReadWriter
	routes Routes
	log    io.Writer

	mu    sync.Mutex
	links map[peer.ID]chan []byte
	down  map[peer.ID]time.Time // links that failed: no new try before then

	rejected atomic.Uint64
}

// NewRouter serves the VPN protocol on h, handing accepted packets to dev;
// Run sends what dev gives to the hosts holding their destinations.
func NewRouter(h host.Host, dev io.ReadWriter, routes Routes, log io.Writer) *Router {
	r := &Router{host: h, dev: dev, routes: routes, log: log, links: map[peer.ID]chan []byte{}, down: map[peer.ID]time.Time{}}
	h.SetStreamHandler(VPNProtocol, r.serve)
	return r
}

// serve takes the packets a host sends: each must come from that host's
// own VPN address and be for this node's (vpn.Accept).
func (r *Router) serve(s network.Stream) {
	defer s.Close()
	from := s.Conn().RemotePeer()
	br := bufio.NewReaderSize(s, 64<<10)
	buf := make([]byte, vpn.MaxPacket)
	for {
		pkt, err := vpn.ReadFrame(br, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.Reset()
			}
			return
		}
		addr, ok := r.routes.AddrOf(from)
		if !ok {
			r.reject(fmt.Errorf("a packet from %s, which holds no VPN address", from))
			continue
		}
		if err := vpn.Accept(pkt, addr, r.routes.Self()); err != nil {
			r.reject(err)
			continue
		}
		if _, err := r.dev.Write(pkt); err != nil {
			r.reject(fmt.Errorf("writing to the VPN device: %w", err))
		}
	}
}

// reject counts a dropped packet and logs the first ones and then every
// thousandth, so a misbehaving peer cannot flood the journal.
func (r *Router) reject(err error) {
	n := r.rejected.Add(1)
	if n <= 10 || n%1000 == 0 {
		fmt.Fprintf(r.log, "p2p: VPN packet dropped (%d so far): %v\n", n, err)
	}
}

// Run reads the device until ctx ends or the device is closed.
func (r *Router) Run(ctx context.Context) error {
	buf := make([]byte, vpn.MaxPacket)
	for {
		n, err := r.dev.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading the VPN device: %w", err)
		}
		_, dst, err := vpn.Addresses(buf[:n])
		if err != nil {
			continue // not IP, or broken: nothing to route
		}
		id, ok := r.routes.PeerOf(dst)
		if !ok || id == r.host.ID() {
			continue // nobody holds it (multicast, a gone node): as a LAN would, drop it
		}
		r.send(ctx, id, append([]byte(nil), buf[:n]...))
	}
}

// send queues pkt for id, starting the link to it if there is none.
func (r *Router) send(ctx context.Context, id peer.ID, pkt []byte) {
	r.mu.Lock()
	if time.Now().Before(r.down[id]) {
		r.mu.Unlock()
		return // the peer was unreachable a moment ago: as a LAN would, drop
	}
	q, ok := r.links[id]
	if !ok {
		q = make(chan []byte, queueLen)
		r.links[id] = q
		go r.link(ctx, id, q)
	}
	r.mu.Unlock()
	select {
	case q <- pkt:
	default: // the queue is full: drop, as an interface would
	}
}

// link is the stream to one host: packets are written as they come and
// flushed when none is waiting, so a burst goes out in few writes.
func (r *Router) link(ctx context.Context, id peer.ID, q chan []byte) {
	defer func() {
		r.mu.Lock()
		delete(r.links, id)
		r.mu.Unlock()
	}()
	s, err := r.host.NewStream(ctx, id, VPNProtocol)
	if err != nil {
		r.mu.Lock()
		r.down[id] = time.Now().Add(linkRetry)
		r.mu.Unlock()
		fmt.Fprintf(r.log, "p2p: VPN link to %s: %v (tried again in %s)\n", id, err, linkRetry)
		return
	}
	defer s.Close()
	bw := bufio.NewWriterSize(s, 64<<10)
	for {
		var pkt []byte
		select {
		case <-ctx.Done():
			return
		case pkt = <-q:
		}
		for {
			if err := vpn.WriteFrame(bw, pkt); err != nil {
				s.Reset()
				fmt.Fprintf(r.log, "p2p: VPN link to %s: %v\n", id, err)
				return
			}
			select {
			case pkt = <-q:
				continue
			default:
			}
			break
		}
		if err := bw.Flush(); err != nil {
			s.Reset()
			fmt.Fprintf(r.log, "p2p: VPN link to %s: %v\n", id, err)
			return
		}
	}
}
