// Command kairos-frontend is the BuildKit gateway entry point: the same
// frontend.Build that `kairos build` runs in-process, served to buildctl and
// buildx through the gateway API.
package main

import (
	"fmt"
	"os"

	"github.com/moby/buildkit/frontend/gateway/grpcclient"
	"github.com/moby/buildkit/util/appcontext"

	"github.com/kairos-io/kairos/frontend"
)

func main() {
	if err := grpcclient.RunFromEnvironment(appcontext.Context(), frontend.Build); err != nil {
		fmt.Fprintln(os.Stderr, "kairos-frontend: error:", err)
		os.Exit(1)
	}
}
