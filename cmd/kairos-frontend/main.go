// Command kairos-frontend is the BuildKit gateway entry point: the same
// frontend.Build that `kairos build` runs in-process, served to buildctl and
// buildx through the gateway API.
//
// Run as `kairos-frontend artifacts ...` it is the artifact writer instead:
// the frontend's artifact targets execute the gateway image itself inside
// BuildKit, so the ISO, disks and netboot files come from the same Go code
// as `kairos artifacts`, with no tools installed into the image.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/moby/buildkit/frontend/gateway/grpcclient"
	"github.com/moby/buildkit/util/appcontext"

	"github.com/kairos-io/kairos/frontend"
	artifactscmd "github.com/kairos-io/kairos/internal/artifacts/command"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "artifacts" {
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer cancel()
		cmd := artifactscmd.New()
		cmd.SetArgs(os.Args[2:])
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if err := cmd.ExecuteContext(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "kairos-frontend artifacts: error:", err)
			os.Exit(1)
		}
		return
	}
	if err := grpcclient.RunFromEnvironment(appcontext.Context(), frontend.Build); err != nil {
		fmt.Fprintln(os.Stderr, "kairos-frontend: error:", err)
		os.Exit(1)
	}
}
