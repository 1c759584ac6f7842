package stages

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sirupsen/logrus"
)

// The stages run as root on every boot and write below home directories a
// user controls. These tests plant the links such a user could plant (the
// tests run as root, so the links and directories are made the user's with
// Lchown) and check that nothing outside the user's own files changes.

const userUID = 1000

// attackRoot is a stage root with a user u (uid 1000) whose home is u's,
// root's own authorized_keys and a fake /etc/shadow to aim at.
func attackRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeConfig(t, root, "/etc", "passwd", "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:u:/home/u:/bin/sh\n")
	writeConfig(t, root, "/etc", "group", "root:x:0:\nu:x:1000:\n")
	writeConfig(t, root, "/etc", "shadow", "root:$6$rootsalt$roothash:19000:0:99999:7:::\nu:!:19000:0:99999:7:::\n")
	mustDo(t, os.Chmod(filepath.Join(root, "etc/shadow"), 0o640))
	writeConfig(t, root, "/root/.ssh", "authorized_keys", "ssh-ed25519 AAAAroot root@admin\n")
	mustDo(t, os.Chmod(filepath.Join(root, "root/.ssh"), 0o700))
	mustDo(t, os.Chmod(filepath.Join(root, "root/.ssh/authorized_keys"), 0o600))
	userDir(t, root, "/home/u")
	return root
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// userDir makes a directory owned by u, as u's own home and what u makes in it.
func userDir(t *testing.T, root, p string) {
	t.Helper()
	mustDo(t, os.MkdirAll(filepath.Join(root, p), 0o755))
	mustDo(t, os.Lchown(filepath.Join(root, p), userUID, userUID))
}

// userLink plants a symbolic link owned by u.
func userLink(t *testing.T, root, target, p string) {
	t.Helper()
	mustDo(t, os.Symlink(target, filepath.Join(root, p)))
	mustDo(t, os.Lchown(filepath.Join(root, p), userUID, userUID))
}

// unchanged fails the test if the file at p (below root) no longer has
// content, mode and owner root:root.
func unchanged(t *testing.T, root, p, content string, mode os.FileMode) {
	t.Helper()
	full := filepath.Join(root, p)
	data, err := os.ReadFile(full)
	if err != nil || string(data) != content {
		t.Errorf("%s = %q, %v; want %q unchanged", p, data, err, content)
	}
	st, err := os.Lstat(full)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode() != mode || sys.Uid != 0 || sys.Gid != 0 {
		t.Errorf("%s: mode %v owner %d:%d; want %v root:root unchanged", p, st.Mode(), sys.Uid, sys.Gid, mode)
	}
}

// stageRun is what running a stage gave: its error (the failed steps) and
// its log (where each step's error is told).
type stageRun struct {
	err error
	log string
}

func runConfig(t *testing.T, root, stage, config string) stageRun {
	t.Helper()
	writeConfig(t, root, "/oem", "90_custom.yaml", config)
	sources, errs := Load(root, []string{"/oem"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var log bytes.Buffer
	logrus.SetOutput(io.MultiWriter(&log, os.Stderr))
	defer logrus.SetOutput(os.Stderr)
	err := Runner{Root: root}.RunStage(context.Background(), sources, stage)
	return stageRun{err, log.String()}
}

// wantRefused checks the stage failed and logged the refusal, naming the
// path and the link.
func wantRefused(t *testing.T, run stageRun, path, link string) {
	t.Helper()
	if run.err == nil || !strings.Contains(run.log, path) || !strings.Contains(run.log, "symbolic link "+link+" -> ") {
		t.Errorf("stage error %v, log:\n%s\nwant a refused symbolic link %s naming %s", run.err, run.log, link, path)
	}
}

const userKeys = `#cloud-config
users:
  - name: u
    ssh_authorized_keys: ["ssh-ed25519 AAAAuser u@laptop"]
  - name: other
`

// (a) ~/.ssh/authorized_keys -> root's: u's key must not land in root's file.
func TestUsersAuthorizedKeysLinkIsRefused(t *testing.T) {
	root := attackRoot(t)
	userDir(t, root, "/home/u/.ssh")
	userLink(t, root, "../../../root/.ssh/authorized_keys", "/home/u/.ssh/authorized_keys")

	run := runConfig(t, root, UsersStage, userKeys)
	wantRefused(t, run, "/home/u/.ssh/authorized_keys", "/home/u/.ssh/authorized_keys")
	unchanged(t, root, "/root/.ssh/authorized_keys", "ssh-ed25519 AAAAroot root@admin\n", 0o600)
	// One user's refused key does not keep the other users from being made.
	if passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); !strings.Contains(string(passwd), "\nother:x:") {
		t.Errorf("the other user was not created:\n%s", passwd)
	}
}

// (b) ~/.ssh -> /root/.ssh.
func TestUsersSSHDirLinkIsRefused(t *testing.T) {
	root := attackRoot(t)
	userLink(t, root, "../../root/.ssh", "/home/u/.ssh")

	run := runConfig(t, root, UsersStage, userKeys)
	wantRefused(t, run, "/home/u/.ssh", "/home/u/.ssh")
	unchanged(t, root, "/root/.ssh/authorized_keys", "ssh-ed25519 AAAAroot root@admin\n", 0o600)
	if st, err := os.Stat(filepath.Join(root, "root/.ssh")); err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("/root/.ssh was given to u: %v", err)
	}
}

// SSH keys still end up u's: ~/.ssh 0700 and authorized_keys 0600.
func TestUsersAuthorizedKeysOwnedByUser(t *testing.T) {
	root := attackRoot(t)
	userDir(t, root, "/home/u/.ssh")
	mustDo(t, os.Chmod(filepath.Join(root, "home/u/.ssh"), 0o755))
	if run := runConfig(t, root, UsersStage, userKeys); run.err != nil {
		t.Fatal(run.err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{"home/u/.ssh", os.ModeDir | 0o700}, {"home/u/.ssh/authorized_keys", 0o600}} {
		st, err := os.Lstat(filepath.Join(root, c.path))
		if err != nil {
			t.Fatal(err)
		}
		if sys := st.Sys().(*syscall.Stat_t); st.Mode() != c.mode || sys.Uid != userUID || sys.Gid != userUID {
			t.Errorf("%s: mode %v owner %d:%d; want %v u:u", c.path, st.Mode(), sys.Uid, sys.Gid, c.mode)
		}
	}
	if keys, _ := os.ReadFile(filepath.Join(root, "home/u/.ssh/authorized_keys")); string(keys) != "ssh-ed25519 AAAAuser u@laptop\n" {
		t.Errorf("authorized_keys %q", keys)
	}
	// A new user's home is made for them.
	if st, err := os.Stat(filepath.Join(root, "home/other")); err != nil || st.Mode() != os.ModeDir|0o750 || st.Sys().(*syscall.Stat_t).Uid != 1001 {
		t.Errorf("home of other: %v %v", st, err)
	}
}

const kubeConfig = `#cloud-config
stages:
  boot:
    - name: kubeconfig
      files:
        - path: /home/u/.kube/config
          content: "apiVersion: v1\n"
          permissions: 0666
          owner: 1000
          group: 1000
    - name: after
      files:
        - path: /etc/after
          content: "ran\n"
`

// (c) a files step writing below a home: neither the file, its temp file
// nor a parent directory may lead the write (or its chmod) elsewhere.
func TestFilesStepLinksAreRefused(t *testing.T) {
	const shadow = "root:$6$rootsalt$roothash:19000:0:99999:7:::\nu:!:19000:0:99999:7:::\n"
	for _, c := range []struct {
		name    string
		plant   func(t *testing.T, root string)
		refused string // the link the error names; "" when the write is fine
	}{
		{"config links to shadow", func(t *testing.T, root string) {
			userDir(t, root, "/home/u/.kube")
			userLink(t, root, "../../../etc/shadow", "/home/u/.kube/config")
		}, "/home/u/.kube/config"},
		{".kube links to a root directory", func(t *testing.T, root string) {
			// /etc/kube/config stands for any file of root's, here a copy of shadow.
			mustDo(t, os.MkdirAll(filepath.Join(root, "etc/kube"), 0o755))
			writeConfig(t, root, "/etc/kube", "config", shadow)
			mustDo(t, os.Chmod(filepath.Join(root, "etc/kube/config"), 0o640))
			userLink(t, root, "../../etc/kube", "/home/u/.kube")
		}, "/home/u/.kube"},
		{"the temp file links to shadow", func(t *testing.T, root string) {
			userDir(t, root, "/home/u/.kube")
			userLink(t, root, "../../../etc/shadow", "/home/u/.kube/config.kairos-tmp")
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := attackRoot(t)
			c.plant(t, root)
			run := runConfig(t, root, "boot", kubeConfig)
			if c.refused != "" {
				wantRefused(t, run, "/home/u/.kube/config", c.refused)
			} else if run.err != nil {
				t.Errorf("stage: %v", run.err)
			}
			unchanged(t, root, "/etc/shadow", shadow, 0o640)
			if _, err := os.Stat(filepath.Join(root, "etc/kube")); err == nil {
				unchanged(t, root, "/etc/kube/config", shadow, 0o640)
			}
			if after, err := os.ReadFile(filepath.Join(root, "etc/after")); err != nil || string(after) != "ran\n" {
				t.Errorf("the step after the refused one did not run: %q %v", after, err)
			}
			if c.refused != "" {
				return
			}
			data, err := os.ReadFile(filepath.Join(root, "home/u/.kube/config"))
			st, _ := os.Lstat(filepath.Join(root, "home/u/.kube/config"))
			if err != nil || string(data) != "apiVersion: v1\n" || st.Mode() != 0o666 || st.Sys().(*syscall.Stat_t).Uid != userUID {
				t.Errorf("config %q %v %v", data, st, err)
			}
		})
	}
}

// (d) a directories step never changes the mode or owner of what a link
// points to.
func TestDirectoriesStepLinkIsRefused(t *testing.T) {
	root := attackRoot(t)
	mustDo(t, os.MkdirAll(filepath.Join(root, "etc/secret"), 0o700))
	mustDo(t, os.Chmod(filepath.Join(root, "etc/secret"), 0o700))
	userLink(t, root, "../../etc/secret", "/home/u/data")
	run := runConfig(t, root, "boot", `#cloud-config
stages:
  boot:
    - directories:
        - path: /home/u/data
          permissions: 0777
          owner: 1000
          group: 1000
`)
	wantRefused(t, run, "/home/u/data", "/home/u/data")
	st, err := os.Stat(filepath.Join(root, "etc/secret"))
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); st.Mode() != os.ModeDir|0o700 || sys.Uid != 0 {
		t.Errorf("/etc/secret: mode %v owner %d; want 0700 root", st.Mode(), sys.Uid)
	}
}

// A system's own links, root's in directories only root can write (here
// /var/run -> ../run, as on most distributions), are followed: below the
// stage root.
func TestRootOwnedSystemLinkIsFollowed(t *testing.T) {
	root := attackRoot(t)
	mustDo(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	mustDo(t, os.MkdirAll(filepath.Join(root, "var"), 0o755))
	mustDo(t, os.Symlink("../run", filepath.Join(root, "var/run")))
	run := runConfig(t, root, "boot", `#cloud-config
stages:
  boot:
    - files:
        - path: /var/run/kairos/marker
          content: "x"
      directories:
        - path: /var/run/kairos/d
          permissions: 0710
`)
	if run.err != nil {
		t.Fatal(run.err)
	}
	if data, err := os.ReadFile(filepath.Join(root, "run/kairos/marker")); err != nil || string(data) != "x" {
		t.Errorf("/run/kairos/marker %q %v", data, err)
	}
	if st, err := os.Stat(filepath.Join(root, "run/kairos/d")); err != nil || st.Mode() != os.ModeDir|0o710 {
		t.Errorf("/run/kairos/d %v %v", st, err)
	}
	if st, err := os.Lstat(filepath.Join(root, "var/run")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("/var/run is no longer a link: %v", err)
	}
}
