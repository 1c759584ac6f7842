package stages

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// holdLockEnv makes the test binary a helper that holds lckpwdf's lock on
// the file it names (see holdPwdLock).
const holdLockEnv = "KAIROS_TEST_HOLD_PWD_LOCK"

func TestMain(m *testing.M) {
	if p := os.Getenv(holdLockEnv); p != "" {
		os.Exit(holdPwdLock(p))
	}
	os.Exit(m.Run())
}

// holdPwdLock takes the lock as glibc's lckpwdf(3) does, in a process of
// its own as useradd or passwd would (fcntl locks are per process): the
// file opened O_WRONLY|O_CREAT 0600 and a classic F_SETLKW write lock on
// all of it. It says "locked" on stdout and holds the lock until stdin is
// closed.
func holdPwdLock(p string) int {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLKW, &lk); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// lockHolder is a helper process holding root's /etc/.pwd.lock.
type lockHolder struct {
	pid     int
	release func() // drops the lock (ends the process); may be called again
}

func holdLock(t *testing.T, root string) lockHolder {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), holdLockEnv+"="+filepath.Join(root, "etc/.pwd.lock"))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	mustDo(t, err)
	stdout, err := cmd.StdoutPipe()
	mustDo(t, err)
	mustDo(t, cmd.Start())
	var once sync.Once
	release := func() {
		once.Do(func() {
			stdin.Close()
			cmd.Wait()
		})
	}
	t.Cleanup(release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock helper: %q %v", line, err)
	}
	return lockHolder{cmd.Process.Pid, release}
}

// accountsRoot is a root with the four account files as a Debian system
// has them, but for modes and owners: shadow 0000 root:root as on Fedora,
// gshadow 0640 root:shadow (gid 42) as on Debian. gshadow lacks a line
// for audio, and wheel's has a password and an administrator.
func accountsRoot(t *testing.T, withGshadow bool) string {
	t.Helper()
	root := t.TempDir()
	writeConfig(t, root, "/etc", "passwd", "root:x:0:0:root:/root:/bin/sh\nkairos:x:1000:1000:kairos:/home/kairos:/bin/sh\n")
	writeConfig(t, root, "/etc", "group", "root:x:0:\nshadow:x:42:\nwheel:x:10:root\naudio:x:29:kairos\nkairos:x:1000:\n")
	writeConfig(t, root, "/etc", "shadow", "root:*:19000:0:99999:7:::\nkairos:!:19000:0:99999:7:::\n")
	mustDo(t, os.Chmod(filepath.Join(root, "etc/shadow"), 0))
	if withGshadow {
		writeConfig(t, root, "/etc", "gshadow", "root:*::\nshadow:*::\nwheel:$6$grp$hash:root:root\nkairos:!::\n")
		mustDo(t, os.Chmod(filepath.Join(root, "etc/gshadow"), 0o640))
		mustDo(t, os.Chown(filepath.Join(root, "etc/gshadow"), 0, 42))
	}
	// What pwck checks exists: homes and the login shell.
	mustDo(t, os.MkdirAll(filepath.Join(root, "root"), 0o700))
	mustDo(t, os.MkdirAll(filepath.Join(root, "home/kairos"), 0o750))
	writeConfig(t, root, "/bin", "sh", "")
	return root
}

const adminUsers = `#cloud-config
users:
  - name: u
    groups: [wheel, admin]
  - name: kairos
    groups: [admin]
`

func readFile(t *testing.T, root, p string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

type fileInfo struct {
	mode     os.FileMode
	uid, gid uint32
	ino      uint64
}

func info(t *testing.T, root, p string) fileInfo {
	t.Helper()
	st, err := os.Lstat(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return fileInfo{st.Mode(), sys.Uid, sys.Gid, sys.Ino}
}

// shadowCheck runs shadow-utils' checker (pwck or grpck) read-only on the
// root: chrooted into it by -R, as on the system itself.
func shadowCheck(t *testing.T, tool, root string) (string, error) {
	t.Helper()
	out, err := exec.Command(tool, "-r", "-R", root).CombinedOutput()
	return string(out), err
}

// A group made or joined is made or joined in gshadow too, existing
// gshadow lines keep their password and administrators, a group without
// a gshadow line gets one; shadow-utils' own checkers find nothing wrong.
func TestUsersKeepGshadowConsistent(t *testing.T) {
	root := accountsRoot(t, true)
	before := map[string]string{}
	beforeInfo := map[string]fileInfo{}
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		before[f] = readFile(t, root, "etc/"+f)
		beforeInfo[f] = info(t, root, "etc/"+f)
	}
	// grpck sees the missing audio line: the check below is not vacuous.
	if out, err := shadowCheck(t, "grpck", root); err == nil || !strings.Contains(out, "/etc/gshadow") {
		t.Fatalf("grpck on the starting root: %v\n%s; want the missing gshadow line reported", err, out)
	}

	if run := runConfig(t, root, UsersStage, adminUsers); run.err != nil {
		t.Fatal(run.err)
	}
	group, gshadow := readFile(t, root, "etc/group"), readFile(t, root, "etc/gshadow")
	// u's own group takes gid 1001 (as its uid), admin the next free one.
	for _, want := range []string{"\nwheel:x:10:root,u\n", "\nadmin:x:1002:u,kairos\n", "\nu:x:1001:\n"} {
		if !strings.Contains("\n"+group, want) {
			t.Errorf("group lacks %q:\n%s", want, group)
		}
	}
	wantGshadow := "root:*::\nshadow:*::\n" +
		"wheel:$6$grp$hash:root:root,u\n" + // password and admins kept
		"kairos:!::\n" +
		"u:!::\n" + // a new group, locked as groupadd makes it
		"admin:!::u,kairos\n" +
		"audio:!::kairos\n" // the missing line, with the group's members
	if gshadow != wantGshadow {
		t.Errorf("gshadow:\n%s\nwant:\n%s", gshadow, wantGshadow)
	}
	// Each file keeps its mode and owner, and its backup (as shadow-utils
	// makes one) has what it held, with the same mode and owner.
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		p := "etc/" + f
		if got, was := info(t, root, p), beforeInfo[f]; got.mode != was.mode || got.uid != was.uid || got.gid != was.gid {
			t.Errorf("%s: mode %v owner %d:%d; want %v %d:%d kept", p, got.mode, got.uid, got.gid, was.mode, was.uid, was.gid)
		}
		if got := readFile(t, root, p+"-"); got != before[f] {
			t.Errorf("%s- = %q; want what %s held, %q", p, got, p, before[f])
		}
		if got, was := info(t, root, p+"-"), beforeInfo[f]; got.mode != was.mode || got.uid != was.uid || got.gid != was.gid {
			t.Errorf("%s-: mode %v owner %d:%d; want %v %d:%d as %s", p, got.mode, got.uid, got.gid, was.mode, was.uid, was.gid, p)
		}
	}
	if got := info(t, root, "etc/.pwd.lock"); got.mode != 0o600 || got.uid != 0 {
		t.Errorf("/etc/.pwd.lock: mode %v owner %d; want 0600 root's, as lckpwdf makes it", got.mode, got.uid)
	}
	for _, tool := range []string{"pwck", "grpck"} {
		if out, err := shadowCheck(t, tool, root); err != nil || out != "" {
			t.Errorf("%s -r -R: %v\n%s", tool, err, out)
		}
	}

	// Again: nothing to change, so no file is replaced (same inodes).
	inodes := map[string]uint64{}
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		inodes[f] = info(t, root, "etc/"+f).ino
	}
	if run := runConfig(t, root, UsersStage, adminUsers); run.err != nil {
		t.Fatal(run.err)
	}
	for f, ino := range inodes {
		if info(t, root, "etc/"+f).ino != ino {
			t.Errorf("/etc/%s rewritten by a run that changed nothing", f)
		}
	}
}

// A root without /etc/gshadow (busybox systems) gets none, nor a backup.
func TestUsersRootWithoutGshadow(t *testing.T) {
	root := accountsRoot(t, false)
	if run := runConfig(t, root, UsersStage, adminUsers); run.err != nil {
		t.Fatal(run.err)
	}
	for _, p := range []string{"etc/gshadow", "etc/gshadow-"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s made (%v) in a root without gshadow", p, err)
		}
	}
	if group := readFile(t, root, "etc/group"); !strings.Contains(group, "\nadmin:x:1002:u,kairos\n") {
		t.Errorf("group:\n%s", group)
	}
	if out, err := shadowCheck(t, "pwck", root); err != nil || out != "" {
		t.Errorf("pwck -r -R: %v\n%s", err, out)
	}
}

// ofdAndClassic runs the test with open file description locks and with
// the classic fcntl locks of kernels before 3.15.
func ofdAndClassic(t *testing.T, test func(t *testing.T)) {
	for _, classic := range []bool{false, true} {
		t.Run(fmt.Sprintf("classic=%v", classic), func(t *testing.T) {
			old := noOFDLocks.Load()
			noOFDLocks.Store(classic)
			defer noOFDLocks.Store(old)
			test(t)
		})
	}
}

func loadConfig(t *testing.T, root, config string) []Source {
	t.Helper()
	writeConfig(t, root, "/oem", "90_custom.yaml", config)
	sources, errs := Load(root, []string{"/oem"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return sources
}

// The users stage waits while another program holds lckpwdf's lock, and
// goes on once it is released.
func TestUsersWaitForPwdLock(t *testing.T) {
	ofdAndClassic(t, func(t *testing.T) {
		root := accountsRoot(t, true)
		sources := loadConfig(t, root, adminUsers)
		holder := holdLock(t, root)
		passwd := readFile(t, root, "etc/passwd")

		done := make(chan error, 1)
		go func() { done <- (Runner{Root: root}).RunStage(context.Background(), sources, UsersStage) }()
		select {
		case err := <-done:
			t.Fatalf("the stage did not wait for the lock: %v", err)
		case <-time.After(time.Second):
		}
		if got := readFile(t, root, "etc/passwd"); got != passwd {
			t.Fatalf("passwd changed while another process held the lock:\n%s", got)
		}
		holder.release()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the stage did not go on once the lock was released")
		}
		if got := readFile(t, root, "etc/passwd"); !strings.Contains(got, "\nu:x:1001:") {
			t.Errorf("passwd:\n%s", got)
		}
	})
}

// A lock held past the bound fails the stage with an error naming the
// lock and its holder, and nothing is changed.
func TestUsersPwdLockTimeout(t *testing.T) {
	old := pwdLockTimeout
	pwdLockTimeout = time.Second
	defer func() { pwdLockTimeout = old }()
	ofdAndClassic(t, func(t *testing.T) {
		root := accountsRoot(t, true)
		holder := holdLock(t, root)
		before := map[string]string{}
		for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
			before[f] = readFile(t, root, "etc/"+f)
		}
		start := time.Now()
		run := runConfig(t, root, UsersStage, adminUsers)
		if elapsed := time.Since(start); elapsed < time.Second {
			t.Errorf("gave up after %v, before the bound", elapsed)
		}
		want := fmt.Sprintf("lock /etc/.pwd.lock: still held by process %d", holder.pid)
		if run.err == nil || !strings.Contains(run.log, want) {
			t.Errorf("stage error %v, log:\n%s\nwant %q", run.err, run.log, want)
		}
		for f, content := range before {
			if got := readFile(t, root, "etc/"+f); got != content {
				t.Errorf("/etc/%s changed without the lock:\n%s", f, got)
			}
			if _, err := os.Lstat(filepath.Join(root, "etc", f+"-")); err == nil {
				t.Errorf("/etc/%s- written without the lock", f)
			}
		}
		if _, err := os.Lstat(filepath.Join(root, "home/u")); err == nil {
			t.Error("home of u made though the account was not")
		}
	})
}

// Our lock holds shadow-utils off: useradd (chrooted by -R, so taking the
// root's /etc/.pwd.lock with lckpwdf) waits for it, then adds its user
// without losing ours.
func TestPwdLockExcludesUseradd(t *testing.T) {
	root := accountsRoot(t, true)
	unlock, err := lockAccounts(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("useradd", "-R", root, "-M", "-U", "other")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	mustDo(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		unlock()
		t.Fatalf("useradd did not wait for our lock: %v\n%s", err, out.String())
	case <-time.After(time.Second):
	}
	unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("useradd: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("useradd did not go on once our lock was released")
	}
	if passwd := readFile(t, root, "etc/passwd"); !strings.Contains(passwd, "\nother:x:") {
		t.Errorf("passwd:\n%s", passwd)
	}
}

// Users stages run at the same time in one process (fcntl locks alone do
// not exclude a process from itself) lose none of each other's accounts.
func TestUsersConcurrentInProcess(t *testing.T) {
	ofdAndClassic(t, func(t *testing.T) {
		root := accountsRoot(t, true)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = (Runner{Root: root}).applyUsers(context.Background(), cloudconfig.Users{{Name: fmt.Sprintf("c%d", i), Groups: []string{"wheel"}}})
			}()
		}
		wg.Wait()
		passwd, shadow, gshadow := readFile(t, root, "etc/passwd"), readFile(t, root, "etc/shadow"), readFile(t, root, "etc/gshadow")
		for i := range n {
			name := fmt.Sprintf("c%d", i)
			if errs[i] != nil {
				t.Errorf("%s: %v", name, errs[i])
			}
			if !strings.Contains(passwd, "\n"+name+":x:") || !strings.Contains(shadow, "\n"+name+":!:") || !strings.Contains(gshadow, "\n"+name+":!::\n") {
				t.Errorf("%s lost:\npasswd:\n%s\nshadow:\n%s\ngshadow:\n%s", name, passwd, shadow, gshadow)
			}
		}
		if out, err := shadowCheck(t, "grpck", root); err != nil || out != "" {
			t.Errorf("grpck -r -R: %v\n%s", err, out)
		}
	})
}

// A link in the lock's place is not followed, not even root's: nothing is
// created or locked where it points, and no account file is changed.
func TestPwdLockLinkRefused(t *testing.T) {
	root := accountsRoot(t, true)
	mustDo(t, os.Symlink("../var/target", filepath.Join(root, "etc/.pwd.lock")))
	mustDo(t, os.MkdirAll(filepath.Join(root, "var"), 0o755))
	passwd := readFile(t, root, "etc/passwd")
	run := runConfig(t, root, UsersStage, adminUsers)
	if run.err == nil || !strings.Contains(run.log, "/etc/.pwd.lock: a symbolic link, not followed") {
		t.Errorf("stage error %v, log:\n%s\nwant the link refused", run.err, run.log)
	}
	if _, err := os.Lstat(filepath.Join(root, "var/target")); err == nil {
		t.Error("the link's target was created")
	}
	if got := readFile(t, root, "etc/passwd"); got != passwd {
		t.Errorf("passwd changed without the lock:\n%s", got)
	}
}
