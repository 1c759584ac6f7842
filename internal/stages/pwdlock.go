package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/safefile"
)

// pwdLockPath is the lock every editor of the account files takes before
// reading and writing them: glibc's lckpwdf(3) takes an exclusive fcntl
// lock on the whole of it, and shadow-utils (useradd, usermod, groupadd,
// passwd, chpasswd, vipw; with -R too, as they chroot first) and
// pam_unix call lckpwdf. Holding it keeps their edits and ours from
// interleaving, where each would write back tables without the other's
// change.
const pwdLockPath = "/etc/.pwd.lock"

// pwdLockTimeout bounds the wait for the lock, as lckpwdf's 15 seconds: a
// holder still at it by then is most likely stuck, and the boot must go
// on (the users step fails and says who holds the lock).
var pwdLockTimeout = 15 * time.Second

// pwdLockPoll is how often a held lock is tried again: lckpwdf bounds a
// blocking F_SETLKW with alarm(2), a signal a Go program cannot aim at one
// thread's system call, so here F_OFD_SETLK is tried without blocking,
// again and again, up to the bound.
const pwdLockPoll = 50 * time.Millisecond

// pwdSem lets one account edit of this process run at a time. Open file
// description locks already exclude a second one; classic fcntl locks
// (the fallback below) do not, as they belong to the process, and any
// close of the file would drop them.
var pwdSem = make(chan struct{}, 1)

// noOFDLocks is set once the kernel said it has no open file description
// locks (before 3.15).
var noOFDLocks atomic.Bool

// lockAccounts takes the account files lock of root (<root>/etc/.pwd.lock,
// made 0600 if missing), waiting up to pwdLockTimeout, and gives the
// function that releases it.
//
// The lock is an F_OFD_SETLK write lock on the whole file: the kernel
// makes it conflict with lckpwdf's classic F_SETLKW lock both ways, and
// since it belongs to the open file and not the process it is never lost
// by an unrelated close elsewhere in the agent. It goes with the process
// too: a crashed agent leaves no stale lock behind.
func lockAccounts(ctx context.Context, root string) (func(), error) {
	timeout := time.NewTimer(pwdLockTimeout)
	defer timeout.Stop()
	select {
	case pwdSem <- struct{}{}:
	case <-timeout.C:
		return nil, fmt.Errorf("lock %s: another edit of the accounts by this agent did not end within %v", pwdLockPath, pwdLockTimeout)
	case <-ctx.Done():
		return nil, fmt.Errorf("lock %s: %w", pwdLockPath, ctx.Err())
	}
	release := func() { <-pwdSem }

	f, err := safefile.OpenLockFile(root, pwdLockPath, 0o600)
	if errors.Is(err, unix.EROFS) {
		// On a read-only /etc nobody can change the tables, so there is
		// nothing to exclude; a change of ours fails when it is written.
		logrus.Debugf("%s: read-only, account files not locked", pwdLockPath)
		return release, nil
	}
	if err != nil {
		release()
		return nil, fmt.Errorf("lock the account files: %w", err)
	}
	unlock := func() {
		f.Close() // drops the lock
		release()
	}
	poll := time.NewTicker(pwdLockPoll)
	defer poll.Stop()
	for {
		err := setPwdLock(f)
		if err == nil {
			return unlock, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			unlock()
			return nil, fmt.Errorf("lock %s: %w", pwdLockPath, err)
		}
		select {
		case <-poll.C:
		case <-timeout.C:
			holder := pwdLockHolder(f)
			unlock()
			return nil, fmt.Errorf("lock %s: still held by %s after %v (account tools such as useradd or passwd hold it while they edit); no account file was changed", pwdLockPath, holder, pwdLockTimeout)
		case <-ctx.Done():
			unlock()
			return nil, fmt.Errorf("lock %s: %w", pwdLockPath, ctx.Err())
		}
	}
}

// setPwdLock tries once to take the write lock on the whole file, as
// lckpwdf does (from offset 0, length 0: to the end, however it grows).
func setPwdLock(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if !noOFDLocks.Load() {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if !errors.Is(err, unix.EINVAL) {
			return err
		}
		noOFDLocks.Store(true)
	}
	return unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
}

// pwdLockHolder names the process holding the lock, for the error: the
// kernel tells the pid of a classic lock's holder (lckpwdf's), not of an
// open file description lock's.
func pwdLockHolder(f *os.File) string {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	cmd := unix.F_OFD_GETLK
	if noOFDLocks.Load() {
		cmd = unix.F_GETLK
	}
	if err := unix.FcntlFlock(f.Fd(), cmd, &lk); err != nil || lk.Type == unix.F_UNLCK || lk.Pid <= 0 {
		return "another process"
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", lk.Pid)); err == nil {
		return fmt.Sprintf("process %d (%s)", lk.Pid, strings.TrimSpace(string(comm)))
	}
	return fmt.Sprintf("process %d", lk.Pid)
}
