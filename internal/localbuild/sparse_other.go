//go:build !linux

package localbuild

// Sparsify is a no-op where hole punching is not available.
func Sparsify(string) (int64, error) { return 0, nil }
