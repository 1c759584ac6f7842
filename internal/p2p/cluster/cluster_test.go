package cluster

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func TestAddressUniqueAndStable(t *testing.T) {
	p := netip.MustParsePrefix("10.1.0.0/24")
	var ms []Member
	seen := map[netip.Addr]string{}
	for i := range 50 {
		id := fmt.Sprintf("peer-%02d", i)
		a, err := Address(p, id, ms)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Contains(a) || a == p.Addr() || a == netip.MustParseAddr("10.1.0.255") {
			t.Fatalf("%s got %s", id, a)
		}
		if other, dup := seen[a]; dup {
			t.Fatalf("%s and %s both got %s", id, other, a)
		}
		seen[a] = id
		ms = append(ms, Member{ID: id, Address: a})
	}
	// Each keeps its address when the ledger is read again (a restart).
	for _, m := range ms {
		if a, _ := Address(p, m.ID, ms); a != m.Address {
			t.Errorf("%s moved from %s to %s", m.ID, m.Address, a)
		}
	}
}

// Two nodes that claimed the same address (they chose before they saw
// each other): the smaller ID keeps it, the other moves, on every node's
// reckoning.
func TestAddressCollision(t *testing.T) {
	p := DefaultPrefix
	same := netip.MustParseAddr("10.1.0.7")
	ms := []Member{{ID: "b", Address: same}, {ID: "a", Address: same}}
	if a, _ := Address(p, "a", ms); a != same {
		t.Errorf("a (smaller ID) got %s, want %s", a, same)
	}
	if b, _ := Address(p, "b", ms); b == same || !p.Contains(b) {
		t.Errorf("b got %s", b)
	}
}

func TestAddressFull(t *testing.T) {
	p := netip.MustParsePrefix("10.9.0.0/30") // two hosts
	ms := []Member{{ID: "a", Address: netip.MustParseAddr("10.9.0.1")}, {ID: "b", Address: netip.MustParseAddr("10.9.0.2")}}
	if _, err := Address(p, "c", ms); err == nil {
		t.Error("a third node found room in a /30")
	}
}

func TestElect(t *testing.T) {
	m := func(id, role string) Member { return Member{ID: id, Role: role} }
	for _, c := range []struct {
		name     string
		members  []Member
		min, ha  int
		masters  []string
		workers  []string
		deferred bool
	}{
		{name: "waits for minimum nodes", members: []Member{m("a", ""), m("b", "")}, min: 3, ha: 1, deferred: true},
		{name: "smallest ID is master", members: []Member{m("c", ""), m("a", ""), m("b", "")}, min: 3, ha: 1, masters: []string{"a"}, workers: []string{"b", "c"}},
		{name: "HA: two masters in join order", members: []Member{m("c", ""), m("a", ""), m("b", "")}, min: 3, ha: 2, masters: []string{"a", "b"}, workers: []string{"c"}},
		{name: "a held master stays, even absent from the rest", members: []Member{m("z", RoleMaster), m("a", ""), m("b", "")}, min: 5, ha: 1, masters: []string{"z"}, workers: []string{"a", "b"}},
		{name: "forced worker is never master", members: []Member{{ID: "a", Role: RoleWorker, Forced: true}, m("b", "")}, min: 2, ha: 1, masters: []string{"b"}, workers: []string{"a"}},
		{name: "new node after the election is a worker", members: []Member{m("b", RoleMaster), m("c", RoleWorker), m("a", "")}, min: 2, ha: 1, masters: []string{"b"}, workers: []string{"a", "c"}},
	} {
		e := Elect(c.members, c.min, c.ha, nil)
		if c.deferred {
			if len(e.Roles) != 0 {
				t.Errorf("%s: roles %v, want none yet", c.name, e.Roles)
			}
			continue
		}
		if !slices.Equal(e.Masters, c.masters) {
			t.Errorf("%s: masters %v, want %v", c.name, e.Masters, c.masters)
		}
		var workers []string
		for id, r := range e.Roles {
			if r == RoleWorker {
				workers = append(workers, id)
			}
		}
		slices.Sort(workers)
		if !slices.Equal(workers, c.workers) {
			t.Errorf("%s: workers %v, want %v", c.name, workers, c.workers)
		}
	}
	// Every node reaches the same answer whatever order it read the
	// ledger in.
	ms := []Member{m("d", ""), m("b", ""), m("a", ""), m("c", "")}
	want := Elect(ms, 3, 2, nil)
	slices.Reverse(ms)
	if got := Elect(ms, 3, 2, nil); !slices.Equal(got.Masters, want.Masters) {
		t.Errorf("order changed the election: %v vs %v", got.Masters, want.Masters)
	}
}

func TestK3sFor(t *testing.T) {
	a, b, c := netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("10.1.0.9"), netip.MustParseAddr("10.1.0.12")
	for _, tc := range []struct {
		name     string
		role     string
		self     netip.Addr
		masters  []netip.Addr
		ha       bool
		unit     string
		args     []string
		url      string
		mustFail bool
	}{
		{"single master", RoleMaster, a, []netip.Addr{a}, false, "k3s", []string{"--node-ip=10.1.0.5", "--flannel-iface=edgevpn0", "--tls-san=10.1.0.5"}, "", false},
		{"worker", RoleWorker, c, []netip.Addr{a}, false, "k3s-agent", []string{"--node-ip=10.1.0.12", "--flannel-iface=edgevpn0"}, "https://10.1.0.5:6443", false},
		{"HA first master", RoleMaster, a, []netip.Addr{a, b}, true, "k3s", []string{"--node-ip=10.1.0.5", "--flannel-iface=edgevpn0", "--tls-san=10.1.0.5", "--cluster-init"}, "", false},
		{"HA second master", RoleMaster, b, []netip.Addr{a, b}, true, "k3s", []string{"--node-ip=10.1.0.9", "--flannel-iface=edgevpn0", "--tls-san=10.1.0.9", "--server=https://10.1.0.5:6443"}, "", false},
		{"second master without HA", RoleMaster, b, []netip.Addr{a, b}, false, "", nil, "", true},
		{"none", RoleNone, b, []netip.Addr{a}, false, "", nil, "", true},
	} {
		k, err := K3sFor(tc.role, tc.self, "edgevpn0", tc.masters, "tok", tc.ha)
		if tc.mustFail {
			if err == nil {
				t.Errorf("%s: %+v, want an error", tc.name, k)
			}
			continue
		}
		if err != nil || k.Unit != tc.unit || !slices.Equal(k.Args, tc.args) || k.Env["K3S_URL"] != tc.url || k.Env["K3S_TOKEN"] != "tok" {
			t.Errorf("%s: %+v, %v", tc.name, k, err)
		}
	}
}

// A master elected later keeps its place after the ones in place, whatever
// its ID: the first master (k3s --cluster-init with HA) never changes.
func TestElectKeepsJoinOrder(t *testing.T) {
	ms := []Member{{ID: "b", Role: RoleMaster}, {ID: "c", Role: RoleMaster}, {ID: "a", Role: RoleMaster}, {ID: "d"}}
	e := Elect(ms, 2, 3, []string{"b", "c"})
	if !slices.Equal(e.Masters, []string{"b", "c", "a"}) || e.Roles["d"] != RoleWorker {
		t.Errorf("masters %v, roles %v", e.Masters, e.Roles)
	}
}
