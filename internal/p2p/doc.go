// Package p2p is where the cluster mesh lives (issue 17): nodes given one
// network token find each other, build a VPN, agree on roles and set up
// k3s, with no central server. Built so far, as pure, tested parts:
//
//   - token:   upstream's network token (base64 YAML: otp.dht, otp.crypto,
//     room, rendezvous, mdns, max_message_size), read, made, and the
//     per-purpose secrets derived from it (the libp2p private-network key,
//     the k3s cluster token);
//   - cluster: VPN address assignment and role election as functions of
//     the ledger, and the k3s arguments a role gets;
//   - ledger:  one entry per node, accepted only from that node, highest
//     sequence wins;
//   - vpn:     the TUN device, and the packets peers exchange (framing on
//     streams; a peer may only send from its own VPN address to ours).
//
// Still to build: the mesh itself on libp2p (a host with the token's
// private network, mDNS discovery under the token's mdns name, the DHT
// unless disable_dht, gossip pub/sub on the room topic carrying the
// ledger entries, a stream protocol carrying VPN packets), `kairos-agent
// p2p run|status|generate-token`, the boot service, the cloud-config keys
// (refused by validate until the mesh carries them out) and the namespace
// and QEMU proofs.
package p2p
