package token

import (
	"encoding/base64"
	"strings"
	"testing"
)

// upstreamToken is a token in upstream's format, as its documentation
// shows the document (keys made up for the test).
var upstreamToken = base64.StdEncoding.EncodeToString([]byte(`otp:
  dht:
    interval: 9000
    key: LHKNKT6YZYQGGY3JANGXMLJTHRH7SW3C
    length: 32
  crypto:
    interval: 9000
    key: SGIB6NYJMSRJF2AJDGUI2NDB5LBVCPLS
    length: 32
room: ubONSBFkdWbzkSBTglFzOhWvczTBQJOR
rendezvous: exoHOajMYMSPrHhevAEEjnCHLssFfzfT
mdns: aUjuSeQfGwNUjvhwCrFoDhyVEgJBbYPu
max_message_size: 20971520
`))

func TestParseUpstreamToken(t *testing.T) {
	n, err := Parse(upstreamToken)
	if err != nil {
		t.Fatal(err)
	}
	if n.OTP.DHT.Key != "LHKNKT6YZYQGGY3JANGXMLJTHRH7SW3C" || n.Room != "ubONSBFkdWbzkSBTglFzOhWvczTBQJOR" || n.MaxMessageSize != 20971520 || n.OTP.Crypto.Interval != 9000 {
		t.Errorf("parsed %+v", n)
	}
	// URL alphabet and no padding are the same token.
	raw, _ := base64.StdEncoding.DecodeString(upstreamToken)
	if m, err := Parse(base64.RawURLEncoding.EncodeToString(raw)); err != nil || m != n {
		t.Errorf("raw URL base64: %v", err)
	}
}

func TestGenerateRoundTrip(t *testing.T) {
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate()
	if a == b || a.Derive("x") == b.Derive("x") {
		t.Error("two generated networks are the same")
	}
	got, err := Parse(a.Encode())
	if err != nil || got != a {
		t.Fatalf("Parse(Encode()) = %+v, %v", got, err)
	}
	if a.Derive("libp2p-psk") == a.Derive("k3s-token") {
		t.Error("derived secrets for two purposes are equal")
	}
	if got.Derive("libp2p-psk") != a.Derive("libp2p-psk") {
		t.Error("the same token derives another secret")
	}
}

// A bad token is a clear error that never quotes the token.
func TestParseErrors(t *testing.T) {
	secret := "SGIB6NYJMSRJF2AJDGUI2NDB5LBVCPLS"
	for name, tc := range map[string]struct{ tok, want string }{
		"empty":      {"", "empty"},
		"not base64": {"%%%" + secret, "not base64"},
		"not yaml":   {base64.StdEncoding.EncodeToString([]byte("[" + secret)), "does not hold a network document"},
		"no keys":    {base64.StdEncoding.EncodeToString([]byte("room: " + secret + "\n")), "key is missing"},
		"bad key":    {base64.StdEncoding.EncodeToString([]byte(strings.Replace(mustDecode(upstreamToken), "LHKNKT6YZYQGGY3JANGXMLJTHRH7SW3C", "not-base32!", 1))), "otp.dht.key is not base32"},
		"no room":    {base64.StdEncoding.EncodeToString([]byte(strings.Replace(mustDecode(upstreamToken), "room:", "roam:", 1))), "room is missing"},
		"huge":       {strings.Repeat("A", MaxTokenSize+4), "more than a token can be"},
	} {
		_, err := Parse(tc.tok)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error quotes a secret: %v", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(upstreamToken)
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		n, err := Parse(tok)
		if err == nil {
			if err := n.Validate(); err != nil {
				t.Fatalf("Parse accepted an invalid network: %v", err)
			}
		}
	})
}

func mustDecode(s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
