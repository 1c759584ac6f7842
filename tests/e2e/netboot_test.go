//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/tests/qemu"
)

// TestNetboot boots the netboot artifacts that `kairos artifacts netboot`
// wrote (our own squashfs writer) the way a PXE network does: QEMU's DHCP
// hands out a small iPXE script over TFTP that sets ${base-url} to an HTTP
// server on the host (10.0.2.2 from the guest) and chains the generated
// script; the kernel and initrd come over HTTP, and dracut's livenet fetches
// the squashfs. It then checks the live system from inside.
func TestNetboot(t *testing.T) {
	md := buildMedia(t)
	dir, name := md.dir, md.name
	for _, suffix := range []string{"-kernel", "-initrd", ".squashfs", ".ipxe"} {
		verifyChecksum(t, filepath.Join(dir, name+suffix))
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port

	tftp := t.TempDir()
	chain := fmt.Sprintf("#!ipxe\nset base-url http://10.0.2.2:%d\nchain ${base-url}/%s.ipxe\n", port, name)
	must(t, os.WriteFile(filepath.Join(tftp, "boot.ipxe"), []byte(chain), 0o644))

	ctx := context.Background()
	m, err := qemu.Start(qemu.Options{Firmware: qemu.BIOS, Netboot: &qemu.Netboot{TFTPDir: tftp, BootFile: "boot.ipxe"},
		MemoryMB: 3072, LogPath: logPath(t)})
	must(t, err)
	defer m.Stop()
	t.Logf("serial log: %s", m.LogPath())
	if err := m.Login(ctx, "kairos", "kairos", 8*time.Minute); err != nil {
		t.Fatal(err)
	}
	m.Run(ctx, "sudo dmesg -n 1", time.Minute)
	out, code, err := m.Run(ctx, "cat /proc/cmdline", time.Minute)
	must(t, err)
	if code != 0 || !strings.Contains(out, "root=live:http://10.0.2.2:") || !strings.Contains(out, " netboot") {
		t.Errorf("kernel command line %q is not the netboot one", out)
	}
	checkLive(ctx, t, m)
}
