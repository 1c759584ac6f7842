package ledger

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLedgerConverges(t *testing.T) {
	now := time.Now()
	a1 := Entry{Peer: "A", Seq: 1, Address: netip.MustParseAddr("10.1.0.5")}
	a2 := Entry{Peer: "A", Seq: 2, Address: netip.MustParseAddr("10.1.0.5"), Role: "master"}
	b1 := Entry{Peer: "B", Seq: 1, Hostname: "b"}
	// Two nodes hear the same entries in different orders.
	x, y := New(), New()
	for _, e := range []Entry{a1, a2, b1} {
		x.Put(e, now)
	}
	for _, e := range []Entry{b1, a2, a1} {
		y.Put(e, now)
	}
	ex, ey := x.Entries(), y.Entries()
	if len(ex) != 2 || len(ey) != 2 || !reflect.DeepEqual(ex[0], a2) || !reflect.DeepEqual(ey[0], a2) || !reflect.DeepEqual(ex[1], b1) {
		t.Errorf("ledgers differ: %+v vs %+v", ex, ey)
	}
	if err := x.Put(a1, now); err != ErrStale {
		t.Errorf("an older entry: %v", err)
	}
	if m := x.Members(); len(m) != 2 || m[0].Role != "master" || m[0].Address != a2.Address {
		t.Errorf("members %+v", m)
	}
}

func TestDecodeOnlyOwnEntry(t *testing.T) {
	e := Entry{Peer: "A", Seq: 3, Hostname: "node-a", Address: netip.MustParseAddr("10.1.0.7"), Role: "worker"}
	got, err := Decode("A", e.Encode())
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("Decode = %+v, %v", got, err)
	}
	for name, tc := range map[string]struct {
		from string
		data string
		want string
	}{
		"another's entry": {"B", string(e.Encode()), "writes only its own"},
		"bad role":        {"A", `{"peer":"A","role":"king"}`, `role "king"`},
		"too big":         {"A", `{"peer":"A","hostname":"` + strings.Repeat("x", MaxEntrySize) + `"}`, "at most"},
		"not json":        {"A", `{`, "an entry from A"},
		"escape in name":  {"A", `{"peer":"A","hostname":"x\u001b[2Jy"}`, "host name that is not one"},
		"newline in name": {"A", `{"peer":"A","hostname":"a\nfake log line"}`, "host name that is not one"},
		"junk master":     {"A", `{"peer":"A","masters":[{"peer":"nobody","address":"10.1.0.1"}]}`, "peer ID is not one"},
		"master, no addr": {"A", `{"peer":"A","masters":[{"peer":"12D3KooWEasiJrbGxsuWLLzQDPHZ4pqAu75cEYvdKMMxjzqzJ8aP"}]}`, "without an address"},
	} {
		if _, err := Decode(tc.from, []byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("A", []byte(`{"peer":"A","seq":1,"address":"10.1.0.1"}`))
	f.Fuzz(func(t *testing.T, from string, data []byte) {
		e, err := Decode(from, data)
		if err == nil && e.Peer != from {
			t.Fatal("accepted another's entry")
		}
	})
}
