package deploy

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A second locker is refused at once, naming the holder's pid, while the
// first holds the lock, and gets it once released; another process sees
// the same flock.
func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run/lock/kairos-agent.lock") // parents are made
	release, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("another kairos-agent install/upgrade/reset is running (pid %d)", os.Getpid())
	if _, err := Lock(path); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("second locker while held: %v, want %q", err, want)
	}
	if out, err := exec.Command("flock", "--nonblock", path, "true").CombinedOutput(); err == nil {
		t.Errorf("another process took the lock while held: %s", out)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("flock", "--nonblock", path, "true").CombinedOutput(); err != nil {
		t.Errorf("another process after release: %v %s", err, out)
	}
	again, err := Lock(path)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()

	// Held by another process that has not written its pid: refused all
	// the same. The shell holds the lock on its fd 9 until its stdin closes.
	holder := exec.Command("sh", "-c", `exec 9>>"$0" && flock 9 && echo locked && read x`, path)
	stdin, _ := holder.StdinPipe()
	stdout, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Wait()
	defer stdin.Close()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("the other process did not lock: %q %v", line, err)
	}
	if _, err := Lock(path); err == nil || !strings.Contains(err.Error(), "is running (pid unknown)") {
		t.Errorf("held by another process: %v", err)
	}
}

// Image files are created exclusively: an existing one (another writer's,
// or a leftover) is an error and is left alone.
func TestImagesAreCreatedExclusively(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "transition.img")
	os.WriteFile(src, []byte("new image"), 0o644)
	os.WriteFile(dst, []byte("someone else's"), 0o644)
	if err := CopySparse(dst, src); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("copy over an existing image: %v", err)
	}
	if _, err := WriteImage(dst, nil, "COS_ACTIVE", 8<<20, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("write over an existing image: %v", err)
	}
	if data, _ := os.ReadFile(dst); string(data) != "someone else's" {
		t.Errorf("the existing file was overwritten (now %d bytes)", len(data))
	}
	os.Remove(dst)
	if err := CopySparse(dst, src); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(dst); string(data) != "new image" {
		t.Errorf("copy: %q", data)
	}
}
