// Package p2p is the cluster mesh: nodes given one network token find each
// other, build a VPN, agree on roles and set up k3s, with no central
// server. Its parts:
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
//     streams; a peer may only send from its own VPN address to ours);
//   - mesh:    the libp2p host (TCP, Noise, yamux, the token's private
//     network), mDNS and DHT discovery, the gossip topic carrying the
//     ledger, and the router moving the VPN's packets over streams;
//   - node:    `kairos-agent p2p run`: the settings from the cloud-config,
//     the state kept under /usr/local/.kairos/p2p, the loop that takes the
//     address and role the ledger gives and writes k3s's configuration, and
//     the status `p2p status` shows.
//
// The proofs: tests/mesh (agents in network namespaces), tests/e2e
// TestCluster (two QEMU nodes), tests/bench/vpn (throughput).
package p2p
