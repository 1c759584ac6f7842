// Package token reads and makes the P2P network token: what nodes of one
// cluster share, and all they need to find each other. Its format is
// upstream's (EdgeVPN's), so that a token made by upstream tooling works
// here and the reverse: base64 of a YAML document
//
//	otp:
//	  dht:    {interval: 9000, key: <base32>, length: 32}
//	  crypto: {interval: 9000, key: <base32>, length: 32}
//	room: <random>
//	rendezvous: <random>
//	mdns: <random>
//	max_message_size: 20971520
//
// The keys are secrets: everything derived from them (the libp2p private
// network key, the k3s cluster token) comes from Derive, and nothing here
// formats a token or a key into an error message.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"gopkg.in/yaml.v3"
)

// Network is a decoded token.
type Network struct {
	OTP struct {
		DHT    OTP `yaml:"dht"`
		Crypto OTP `yaml:"crypto"`
	} `yaml:"otp"`
	Room           string `yaml:"room"`
	Rendezvous     string `yaml:"rendezvous"`
	MDNS           string `yaml:"mdns"`
	MaxMessageSize int    `yaml:"max_message_size"`
}

// OTP is a time-based one-time secret: upstream rotates the DHT rendezvous
// and an extra message key with it every Interval seconds.
type OTP struct {
	Interval int    `yaml:"interval"`
	Key      string `yaml:"key"`
	Length   int    `yaml:"length"`
}

// MaxTokenSize bounds what Parse reads: a token is about 400 bytes.
const MaxTokenSize = 16 << 10

// DefaultMaxMessageSize is upstream's default (20 MiB).
const DefaultMaxMessageSize = 20 << 20

// Parse decodes a token: base64 (standard or URL alphabet, padded or not)
// of the YAML document. Errors never quote the token.
func Parse(tok string) (Network, error) {
	tok = strings.TrimSpace(tok)
	var n Network
	if tok == "" {
		return n, errors.New("the network token is empty")
	}
	if len(tok) > MaxTokenSize {
		return n, fmt.Errorf("the network token is %d bytes, more than a token can be (%d)", len(tok), MaxTokenSize)
	}
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(tok); err == nil {
			break
		}
	}
	if err != nil {
		return n, errors.New("the network token is not base64 (generate one with `kairos-agent p2p generate-token`)")
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&n); err != nil {
		return n, errors.New("the network token does not hold a network document (otp, room, rendezvous, mdns)")
	}
	if err := n.Validate(); err != nil {
		return n, fmt.Errorf("the network token: %w", err)
	}
	return n, nil
}

// Validate checks that every field a node uses is there.
func (n Network) Validate() error {
	for name, o := range map[string]OTP{"otp.dht": n.OTP.DHT, "otp.crypto": n.OTP.Crypto} {
		if o.Key == "" {
			return fmt.Errorf("%s.key is missing", name)
		}
		if _, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(o.Key, "="))); err != nil {
			return fmt.Errorf("%s.key is not base32", name)
		}
		if o.Interval <= 0 || o.Length <= 0 {
			return fmt.Errorf("%s: interval and length must be positive", name)
		}
	}
	for name, v := range map[string]string{"room": n.Room, "rendezvous": n.Rendezvous, "mdns": n.MDNS} {
		if v == "" {
			return fmt.Errorf("%s is missing", name)
		}
	}
	if n.MaxMessageSize < 0 {
		return errors.New("max_message_size is negative")
	}
	return nil
}

// Encode is the token of n.
func (n Network) Encode() string {
	data, err := yaml.Marshal(n)
	if err != nil {
		panic(err) // plain strings and ints always marshal
	}
	return base64.StdEncoding.EncodeToString(data)
}

// Generate makes a new network with random secrets and upstream's
// defaults.
func Generate() (Network, error) {
	var n Network
	for _, k := range []*string{&n.OTP.DHT.Key, &n.OTP.Crypto.Key} {
		b := make([]byte, 20)
		if _, err := rand.Read(b); err != nil {
			return n, err
		}
		*k = base32.StdEncoding.EncodeToString(b)
	}
	n.OTP.DHT.Interval, n.OTP.DHT.Length = 9000, 32
	n.OTP.Crypto.Interval, n.OTP.Crypto.Length = 9000, 32
	for _, s := range []*string{&n.Room, &n.Rendezvous, &n.MDNS} {
		v, err := randomLetters(32)
		if err != nil {
			return n, err
		}
		*s = v
	}
	n.MaxMessageSize = DefaultMaxMessageSize
	return n, nil
}

func randomLetters(l int) (string, error) {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, l)
	for i := range b {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(len(letters))))
		if err != nil {
			return "", err
		}
		b[i] = letters[j.Int64()]
	}
	return string(b), nil
}

// Derive is a 32-byte secret for one purpose ("libp2p-psk", "k3s-token",
// ...), an HMAC-SHA256 keyed by the network's secrets: nodes sharing the
// token derive the same, nobody else can, and one derived secret tells
// nothing of another or of the token.
func (n Network) Derive(purpose string) [32]byte {
	m := hmac.New(sha256.New, []byte(n.OTP.Crypto.Key+"\x00"+n.OTP.DHT.Key+"\x00"+n.Room+"\x00"+n.Rendezvous))
	m.Write([]byte("kairos p2p v1\x00" + purpose))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}
