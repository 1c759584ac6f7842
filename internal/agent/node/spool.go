package node

import (
	"os"
	"path/filepath"

	"github.com/kairos-io/kairos/internal/agent/host"
)

// SpoolDir is where a pulled image's files are spooled: $TMPDIR, else the
// persistent partition (the root is read-only, /run is memory). "" (the
// system's temporary directory) when the spool cannot be made.
func SpoolDir(h *host.Host) string {
	if d := h.Getenv("TMPDIR"); d != "" {
		return d
	}
	// /usr/local/.kairos stays readable (users check its deployed
	// sentinel); only the spool is private.
	d := h.Spool
	if err := os.MkdirAll(filepath.Dir(d), 0o755); err != nil {
		return ""
	}
	if err := os.Mkdir(d, 0o700); err != nil && !os.IsExist(err) {
		return ""
	}
	// What an interrupted pull left.
	old, _ := filepath.Glob(filepath.Join(d, "kairos-spool-*"))
	for _, f := range old {
		os.Remove(f)
	}
	return d
}
