// Package buildkitd finds the BuildKit daemon a build talks to: the one named
// by $BUILDKIT_HOST, or a private local daemon that it starts on first use and
// reuses afterwards (socket and state under ~/.cache/kairos/buildkit).
package buildkitd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/sirupsen/logrus"
)

// Daemon describes where the private daemon lives.
type Daemon struct {
	// StateDir holds the socket, the daemon's root and its log.
	StateDir string
	// Binary is the buildkitd executable; empty means look it up.
	Binary string
	// StartTimeout bounds how long a fresh daemon may take to answer.
	StartTimeout time.Duration
}

// DefaultStateDir is ~/.cache/kairos/buildkit (XDG_CACHE_HOME honoured).
func DefaultStateDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w", err)
	}
	return filepath.Join(dir, "kairos", "buildkit"), nil
}

// defaultConfig is written as buildkitd.toml when the user has none. Like
// Docker, it treats a registry on the loopback address as plain HTTP, so a
// local registry (docker-registry on port 5000) works for frontend images
// and bases without TLS; edit the file to add others.
const defaultConfig = `# Written by kairos on first start; edit freely (restart the daemon after).
[registry."127.0.0.1:5000"]
  http = true
  insecure = true

[registry."localhost:5000"]
  http = true
  insecure = true
`

// Socket is the address of the private daemon.
func (d Daemon) Socket() string { return "unix://" + filepath.Join(d.StateDir, "buildkitd.sock") }

// LogPath is where the private daemon writes its log.
func (d Daemon) LogPath() string { return filepath.Join(d.StateDir, "buildkitd.log") }

// Connect returns a client for $BUILDKIT_HOST when it is set, else for the
// private daemon, starting it when it is not running.
func Connect(ctx context.Context, d Daemon) (*client.Client, error) {
	if host := os.Getenv("BUILDKIT_HOST"); host != "" {
		logrus.Infof("buildkit: using BUILDKIT_HOST=%s", host)
		c, err := Dial(ctx, host, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("BUILDKIT_HOST=%s does not answer: %w", host, err)
		}
		return c, nil
	}
	if c, err := Dial(ctx, d.Socket(), 2*time.Second); err == nil {
		logrus.Infof("buildkit: reusing the local daemon at %s", d.Socket())
		return c, nil
	}
	if err := d.start(); err != nil {
		return nil, err
	}
	timeout := d.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	c, err := Dial(ctx, d.Socket(), timeout)
	if err != nil {
		return nil, fmt.Errorf("the local buildkitd did not answer within %s (log: %s): %w", timeout, d.LogPath(), err)
	}
	return c, nil
}

// Dial connects to addr and proves the daemon answers by listing its
// workers, retrying until timeout.
func Dial(ctx context.Context, addr string, timeout time.Duration, opts ...client.ClientOpt) (*client.Client, error) {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		c, err := client.New(ctx, addr, opts...)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = c.ListWorkers(pctx)
			cancel()
			if err == nil {
				return c, nil
			}
			c.Close()
		}
		lastErr = err
		if time.Now().After(deadline) {
			return nil, lastErr
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (d Daemon) start() error {
	if os.Geteuid() != 0 {
		return errors.New("starting buildkitd needs root on this machine (runc, overlayfs); run as root or set BUILDKIT_HOST to a running daemon")
	}
	bin, err := d.binary()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.StateDir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", d.StateDir, err)
	}
	// A daemon that holds the state lock but does not answer (seen stuck
	// in a graceful shutdown) would make the new one exit at once.
	d.stopStale()
	sock := filepath.Join(d.StateDir, "buildkitd.sock")
	// A socket left by a daemon that died would make the new one fail to bind.
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	logf, err := os.OpenFile(d.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening buildkitd log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin,
		"--root", filepath.Join(d.StateDir, "root"),
		"--addr", d.Socket(),
		"--oci-worker=true", "--containerd-worker=false",
		// Package installs inside the build reach the distro mirrors directly.
		"--oci-worker-net=host",
	)
	cfg := filepath.Join(d.StateDir, "buildkitd.toml")
	if !fileExists(cfg) {
		if err := os.WriteFile(cfg, []byte(defaultConfig), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", cfg, err)
		}
	}
	cmd.Args = append(cmd.Args, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session, so it outlives this process and is reused next time.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	pidfile := filepath.Join(d.StateDir, "buildkitd.pid")
	if err := os.WriteFile(pidfile, []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", pidfile, err)
	}
	logrus.Infof("buildkit: started local daemon %s (pid %d) at %s, log %s", bin, cmd.Process.Pid, d.Socket(), d.LogPath())
	return cmd.Process.Release()
}

// stopStale ends the process in the pid file, if it still runs: the caller
// found no daemon answering on the socket.
func (d Daemon) stopStale() {
	data, err := os.ReadFile(filepath.Join(d.StateDir, "buildkitd.pid"))
	if err != nil {
		return
	}
	var pid int
	if _, err := fmt.Sscan(string(data), &pid); err != nil || pid <= 1 {
		return
	}
	// Only a buildkitd: the pid may have been reused by another program.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "buildkitd") {
		return
	}
	logrus.Warnf("buildkit: daemon pid %d holds the state but does not answer; stopping it", pid)
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 50; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// binary finds buildkitd: the configured path, PATH, or the newest one
// earthly.sh built into the cache (<cache>/bin/buildkit-<hash>/buildkitd).
func (d Daemon) binary() (string, error) {
	if d.Binary != "" {
		return d.Binary, nil
	}
	if bin, err := exec.LookPath("buildkitd"); err == nil {
		return bin, nil
	}
	built, _ := filepath.Glob(filepath.Join(filepath.Dir(d.StateDir), "bin", "buildkit-*", "buildkitd"))
	var newest string
	var newestTime time.Time
	for _, b := range built {
		if st, err := os.Stat(b); err == nil && st.ModTime().After(newestTime) {
			newest, newestTime = b, st.ModTime()
		}
	}
	if newest == "" {
		return "", errors.New("buildkitd not found in PATH nor in the cache: run ./earthly.sh once (it builds buildkitd from the version pinned in go.mod) or set BUILDKIT_HOST")
	}
	return newest, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
