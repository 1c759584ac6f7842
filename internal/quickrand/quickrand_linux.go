package quickrand

import (
	"errors"

	"golang.org/x/sys/unix"
)

// read asks getrandom(2) with GRND_INSECURE: the kernel's generator
// whether or not it is fully seeded, never blocking (Linux 5.6 and later;
// older kernels refuse the flag with EINVAL and crypto/rand answers).
func read(b []byte) bool {
	for len(b) > 0 {
		n, err := unix.Getrandom(b, unix.GRND_INSECURE)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false
		}
		b = b[n:]
	}
	return true
}
