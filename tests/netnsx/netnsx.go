// Package netnsx runs code inside a named network namespace (ip netns):
// the tests and benchmarks that put agents in namespaces reach them with it.
package netnsx

import (
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs f on a thread that has entered the namespace name. A socket
// made there stays in that namespace whatever thread uses it later.
func Do(name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies in the namespace
		h, err := netns.GetFromName(name)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}
