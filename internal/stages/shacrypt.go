package stages

import (
	"crypto/sha512"
	"regexp"
	"strings"

	"github.com/kairos-io/kairos/internal/quickrand"
)

// SHA-512 crypt ("$6$"), as glibc's crypt(3) and shadow's chpasswd make
// them, following Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512"
// specification (default 5000 rounds). Plain passwords of a cloud-config
// are hashed here so /etc/shadow never holds them and no tool in the image
// is needed.

const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// cryptHash matches the crypt(3) hashes /etc/shadow may hold, each with
// the salt and hash lengths of its method: MD5 ($1$), bcrypt ($2a$, $2b$,
// $2y$: cost, then 22 characters of salt and 31 of hash), SHA-256 ($5$)
// and SHA-512 ($6$) with optional rounds, yescrypt ($y$) and
// gost-yescrypt ($gy$) with their parameters.
var cryptHash = regexp.MustCompile(`^(` +
	`\$1\$[./0-9A-Za-z]{0,8}\$[./0-9A-Za-z]{22}` +
	`|\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./0-9A-Za-z]{53}` +
	`|\$5\$(rounds=[1-9][0-9]*\$)?[./0-9A-Za-z]{0,16}\$[./0-9A-Za-z]{43}` +
	`|\$6\$(rounds=[1-9][0-9]*\$)?[./0-9A-Za-z]{0,16}\$[./0-9A-Za-z]{86}` +
	`|\$g?y\$[./0-9A-Za-z]+\$[./0-9A-Za-z]*\$[./0-9A-Za-z]{43}` +
	`)$`)

// isCryptHash says whether a cloud-config's passwd is to be stored as it
// is: a crypt hash, or the lock markers "!" (also "!!", as RHEL's tools
// write it) and "*", alone or before a hash.
// Anything else is a password, however it starts ("$ecret" is one): stored
// as given it would be plaintext in /etc/shadow that no login matches, and
// a ":" or newline in it would add fields or lines to the file.
func isCryptHash(passwd string) bool {
	if passwd == "" {
		return false
	}
	rest := strings.TrimLeft(passwd, "!")
	if rest == passwd {
		rest = strings.TrimPrefix(passwd, "*")
	} else if rest == "*" {
		return true // "!*"
	}
	return rest == "" || cryptHash.MatchString(rest)
}

// HashPassword returns a $6$ hash of password with a random salt, for
// /etc/shadow or a cloud-config's passwd. A salt has to differ from one
// hash to the next, not to be secret: it does not wait for the kernel's
// random pool, which the users stage in the initramfs would (quickrand).
func HashPassword(password string) (string, error) {
	raw := make([]byte, 16)
	quickrand.Read(raw)
	salt := make([]byte, 16)
	for i, b := range raw {
		salt[i] = cryptAlphabet[int(b)%len(cryptAlphabet)]
	}
	return sha512Crypt(password, string(salt)), nil
}

// sha512Crypt hashes password with salt (at most 16 characters used) and
// the default 5000 rounds.
func sha512Crypt(password, salt string) string {
	const rounds = 5000
	if len(salt) > 16 {
		salt = salt[:16]
	}
	p, s := []byte(password), []byte(salt)

	b := sha512.New()
	b.Write(p)
	b.Write(s)
	b.Write(p)
	sumB := b.Sum(nil)

	a := sha512.New()
	a.Write(p)
	a.Write(s)
	n := len(p)
	for ; n > 64; n -= 64 {
		a.Write(sumB)
	}
	a.Write(sumB[:n])
	for n := len(p); n > 0; n >>= 1 {
		if n&1 != 0 {
			a.Write(sumB)
		} else {
			a.Write(p)
		}
	}
	sumA := a.Sum(nil)

	dp := sha512.New()
	for range len(p) {
		dp.Write(p)
	}
	pSeq := repeatTo(dp.Sum(nil), len(p))

	ds := sha512.New()
	for range 16 + int(sumA[0]) {
		ds.Write(s)
	}
	sSeq := repeatTo(ds.Sum(nil), len(s))

	c := sumA
	for i := range rounds {
		h := sha512.New()
		if i%2 != 0 {
			h.Write(pSeq)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sSeq)
		}
		if i%7 != 0 {
			h.Write(pSeq)
		}
		if i%2 != 0 {
			h.Write(c)
		} else {
			h.Write(pSeq)
		}
		c = h.Sum(nil)
	}

	var out strings.Builder
	out.WriteString("$6$" + salt + "$")
	// The specification's byte order for SHA-512 output.
	for i := range 21 {
		b2, b1, b0 := c[i], c[(i+21)%63], c[(i+42)%63]
		switch i % 3 {
		case 1:
			b2, b1, b0 = c[(i+21)%63], c[(i+42)%63], c[i]
		case 2:
			b2, b1, b0 = c[(i+42)%63], c[i], c[(i+21)%63]
		}
		b64(&out, uint(b2)<<16|uint(b1)<<8|uint(b0), 4)
	}
	b64(&out, uint(c[63]), 2)
	return out.String()
}

func b64(out *strings.Builder, w uint, n int) {
	for range n {
		out.WriteByte(cryptAlphabet[w&0x3f])
		w >>= 6
	}
}

func repeatTo(sum []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, sum[:min(len(sum), n-len(out))]...)
	}
	return out
}
