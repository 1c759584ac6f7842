package quickrand

import "testing"

// The kernel's own non-waiting path answers on Linux (GRND_INSECURE,
// 5.6 and later, which every machine the tests run on has): no fallback to
// crypto/rand, which waits for the pool at boot.
func TestReadIsTheKernelsNonWaitingPath(t *testing.T) {
	if !read(make([]byte, 32)) {
		t.Fatal("getrandom(GRND_INSECURE) refused: Read would wait in crypto/rand")
	}
}
