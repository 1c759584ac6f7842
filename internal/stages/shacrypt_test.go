package stages

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSHA512CryptAgainstOpenSSL checks hashes against `openssl passwd -6`
// (the same algorithm as glibc's crypt), for passwords around the 64-byte
// digest length and salts up to the 16-character limit.
func TestSHA512CryptAgainstOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is needed to check the hashes (apt-get install openssl): %v", err)
	}
	for _, c := range []struct{ pw, salt string }{
		{"Hello world!", "saltstring"},
		{"kairos", "abc"},
		{strings.Repeat("p", 63), "0123456789abcdef"},
		{strings.Repeat("q", 64), "AB/."},
		{strings.Repeat("long password ", 9), "toolongsaltstringXYZ"},
	} {
		out, err := exec.Command("openssl", "passwd", "-6", "-salt", c.salt, c.pw).Output()
		if err != nil {
			t.Fatalf("openssl: %v", err)
		}
		want := strings.TrimSpace(string(out))
		if got := sha512Crypt(c.pw, c.salt); got != want {
			t.Errorf("sha512Crypt(%q, %q) = %s, openssl %s", c.pw, c.salt, got, want)
		}
	}
	h, err := HashPassword("secret")
	if err != nil || !strings.HasPrefix(h, "$6$") || len(h) != 3+16+1+86 {
		t.Errorf("HashPassword: %q %v", h, err)
	}
}
