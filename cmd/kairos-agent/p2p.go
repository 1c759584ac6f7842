package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// meshProgram is the cluster mesh's program (cmd/kairos-p2p), installed
// beside the agent.
const meshProgram = "kairos-p2p"

// p2pCmd runs the mesh's program with the arguments given: `kairos-agent
// p2p run|status|generate-token` are its commands. The mesh is a program
// of its own because libp2p is half of the agent's code and a Go program
// initialises every package it holds when it starts: the agent, started
// for each cloud-config stage of every boot, would pay for it each time
// (a start took 0.39 s under QEMU's emulation with it, 0.24 s without).
func p2pCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "p2p",
		Short:              "The cluster mesh (" + meshProgram + "): nodes sharing a network token form a VPN and a k3s cluster",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := meshPath()
			if err != nil {
				return err
			}
			// exec: the mesh service's signals, output and exit status are
			// the program's own.
			err = syscall.Exec(bin, append([]string{bin}, args...), os.Environ())
			return fmt.Errorf("running %s: %w", bin, err)
		},
	}
}

// meshPath finds the mesh's program beside the agent's executable (both in
// /usr/bin on a node), else in PATH.
func meshPath() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), meshProgram)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	p, err := exec.LookPath(meshProgram)
	if err != nil {
		return "", fmt.Errorf("the cluster mesh's program %s is not installed beside kairos-agent nor in PATH: %w", meshProgram, err)
	}
	return p, nil
}
