package pipeline

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"

	"github.com/kairos-io/kairos/internal/rootfs"
)

// Cosign runs cosign ($KAIROS_COSIGN, else on PATH) with the caller's
// environment (COSIGN_PASSWORD); its output is shown only when it fails.
func Cosign(args ...string) error {
	bin := os.Getenv("KAIROS_COSIGN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("cosign"); err != nil {
			return errors.New("cosign not found: ./earthly.sh +release builds it (tools/cosign), or put it on PATH")
		}
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cosign %s: %w\n%s", args[0], err, out)
	}
	return nil
}

// HTTPRegistry says whether ref's registry is reached over plain HTTP:
// with insecure, or on loopback, as the pulls' policy allows
// (rootfs.RemoteOptions).
func HTTPRegistry(ref string, insecure bool) bool {
	host, _, _ := strings.Cut(ref, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return insecure || rootfs.IsLoopback(strings.Trim(host, "[]"))
}
