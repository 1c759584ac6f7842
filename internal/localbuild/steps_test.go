package localbuild

import (
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// Steps cached locally, steps loaded from a registry cache (only layer
// downloads) and steps that ran (output, or a file step without any
// status) are told apart; BuildKit's bookkeeping is not a step.
func TestStepCount(t *testing.T) {
	now := time.Now()
	v := func(name string, cached bool) *client.Vertex {
		return &client.Vertex{Digest: digest.FromString(name), Name: name, Cached: cached, Completed: &now}
	}
	var c stepCount
	c.add(&client.SolveStatus{
		Vertexes: []*client.Vertex{
			v("[image] install packages", true),
			v("[boot] kernel, initrd, boot assets", false),
			v("[image] services, users, cleanup", false),
			v("[image] add overlay files", false),
			v("[context agent] load from client", false),
			v("exporting to image", false),
		},
		Statuses: []*client.VertexStatus{
			{ID: "sha256:abc", Vertex: digest.FromString("[boot] kernel, initrd, boot assets")},
			{ID: "extracting sha256:abc", Vertex: digest.FromString("[boot] kernel, initrd, boot assets")},
			{ID: "sha256:def", Vertex: digest.FromString("[image] services, users, cleanup")},
		},
		Logs: []*client.VertexLog{{Vertex: digest.FromString("[image] services, users, cleanup"), Data: []byte("kairos-finalize: ...")}},
	})
	steps, cached, ran := c.result()
	if steps != 4 || cached != 2 {
		t.Errorf("steps %d, cached %d: want 4 and 2", steps, cached)
	}
	want := []string{"[image] add overlay files", "[image] services, users, cleanup"}
	if len(ran) != 2 || ran[0] != want[0] || ran[1] != want[1] {
		t.Errorf("ran %q, want %q", ran, want)
	}
}
