//go:build e2e

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kairos-io/kairos/tests/qemu"
)

// sshKey is a fresh key pair for the cloud-config's user: its public half
// in authorized_keys form, and the signer the test logs in with.
func sshKey(t *testing.T) (string, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	must(t, err)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), signer
}

// withSSHKey gives the user-data's user tester an authorized key.
func withSSHKey(userData, key string) string {
	return strings.Replace(userData, "    groups: [admin]\n", fmt.Sprintf("    groups: [admin]\n    ssh_authorized_keys:\n      - %q\n", key), 1)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// bootInstalledLocked is bootInstalled for the first boot of a node: on
// its console the image's live account kairos/kairos is refused before
// the cloud-config's user logs in; SSH is forwarded to sshPort.
func bootInstalledLocked(ctx context.Context, t *testing.T, fw qemu.Firmware, disk, suffix string, sshPort int) *qemu.Machine {
	t.Helper()
	m, err := qemu.Start(qemu.Options{Firmware: fw, Disks: []string{disk}, LogPath: logPath(t) + suffix, SSHPort: sshPort})
	must(t, err)
	t.Cleanup(m.Stop)
	t.Logf("serial log: %s", m.LogPath())
	if err := m.LoginRefused(ctx, "kairos", "kairos", 8*time.Minute); err != nil {
		t.Fatalf("the live media's account on an installed node: %v", err)
	}
	if err := m.Login(ctx, "tester", "e2e-Pass", 2*time.Minute); err != nil {
		t.Fatalf("the cloud-config's user cannot log in: %v", err)
	}
	m.Run(ctx, "sudo dmesg -n 1", time.Minute)
	return m
}

// checkSSH: the installed node's sshd takes the cloud-config user's key
// and refuses every password, the live account's and the config user's
// alike (password logins are off unless a config turns them on).
func checkSSH(t *testing.T, sh func(string) string, port int, key ssh.Signer) {
	t.Helper()
	sh(hostKeyCmd)
	sh("timeout 120 sh -c 'until systemctl is-active -q ssh; do sleep 1; done'")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dial := func(user string, auth ssh.AuthMethod) (*ssh.Client, error) {
		return ssh.Dial("tcp", addr, &ssh.ClientConfig{
			User: user, Auth: []ssh.AuthMethod{auth},
			// The host key was just made by the node itself; the test
			// reaches it through QEMU's forward on loopback only.
			HostKeyCallback: ssh.InsecureIgnoreHostKey(),
			Timeout:         30 * time.Second,
		})
	}
	for _, c := range []struct{ user, password string }{{"kairos", "kairos"}, {"tester", "e2e-Pass"}} {
		client, err := dial(c.user, ssh.Password(c.password))
		if err == nil {
			client.Close()
			t.Errorf("ssh %s with a password was accepted", c.user)
		} else if !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("ssh %s with a password: %v, want an authentication refusal", c.user, err)
		}
	}
	client, err := dial("tester", ssh.PublicKeys(key))
	if err != nil {
		t.Fatalf("ssh tester with the cloud-config's key: %v", err)
	}
	defer client.Close()
	s, err := client.NewSession()
	must(t, err)
	defer s.Close()
	out, err := s.CombinedOutput("id -un")
	if err != nil || strings.TrimSpace(string(out)) != "tester" {
		t.Errorf("ssh tester: id -un = %q, %v", out, err)
	}
}
