package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `kairos-agent p2p ...` runs the kairos-p2p beside the agent with the
// same arguments, flags included; without one it says what is missing.
func TestP2PRunsMeshProgram(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", ".", "../kairos-p2p").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	agent := filepath.Join(dir, "kairos-agent")
	out, err = exec.Command(agent, "p2p", "status", "--root", dir, "--output", "json").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "kairos-p2p: error: no status") {
		t.Errorf("p2p status in an empty root: %v\n%s", err, out)
	}
	out, err = exec.Command(agent, "p2p", "generate-token").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) < 100 {
		t.Errorf("p2p generate-token: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(dir, "kairos-p2p")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(agent, "p2p", "status")
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir())
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "kairos-p2p is not installed beside kairos-agent nor in PATH") {
		t.Errorf("without kairos-p2p: %v\n%s", err, out)
	}
}
