// Package quickrand gives random bytes that never wait for the kernel's
// random pool to be seeded, for values that must differ from one use to the
// next but need not stay secret: the names of temporary files (opened with
// O_EXCL, so a guessed name costs a retry, nothing more) and password salts
// (which only have to be unique).
//
// crypto/rand waits until the pool is seeded (getrandom(2) without flags).
// Early in a boot on a machine without a hardware random number generator
// the kernel trusts (an emulated CPU; many arm64 boards, whose RNG driver is
// a module loaded later), that is a second or more in which the kernel runs
// its jitter entropy loop on a CPU the boot needs: every stage that wrote a
// file or hashed a user's password in the initramfs waited for it. Keys,
// tokens and passphrases keep crypto/rand.
package quickrand

import "crypto/rand"

// Read fills b. It does not fail: the kernel's pool always answers, and
// crypto/rand is the fallback where it cannot be read without waiting.
func Read(b []byte) {
	if read(b) {
		return
	}
	rand.Read(b)
}
