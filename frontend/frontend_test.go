package frontend

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/internal/release"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

var amd64 = ocispecs.Platform{OS: "linux", Architecture: "amd64"}

func mustPlan(t *testing.T, target string, args map[string]string) *Plan {
	t.Helper()
	o, err := ParseOptions(target, args)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := flavors.Load()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(cat, o, amd64)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseOptionsDefaultsAndErrors(t *testing.T) {
	o, err := ParseOptions("", map[string]string{ArgFlavor: "debian"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Target != TargetImage || o.Variant != "core" || o.Model != "generic" || o.Version != DefaultVersion {
		t.Errorf("defaults: %+v", o)
	}
	for _, tc := range []struct {
		target string
		args   map[string]string
		want   string
	}{
		{"floppy", map[string]string{ArgFlavor: "debian"}, "valid: image, iso, all"},
		{"iso", map[string]string{}, "FLAVOR is required"},
		{"iso", map[string]string{ArgFlavor: "debian", ArgVariant: "huge"}, "one of core, standard"},
		{"iso", map[string]string{ArgFlavor: "debian", ArgVersion: "v1/2"}, "VERSION"},
	} {
		if _, err := ParseOptions(tc.target, tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseOptions(%q, %v) = %v, want error containing %q", tc.target, tc.args, err, tc.want)
		}
	}
}

func TestPlanUnknownFlavorListsValid(t *testing.T) {
	o, err := ParseOptions("iso", map[string]string{ArgFlavor: "gentoo"})
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := flavors.Load()
	if _, err := NewPlan(cat, o, amd64); err == nil || !strings.Contains(err.Error(), "debian") {
		t.Errorf("want unknown-flavor error listing debian, got %v", err)
	}
}

func TestReleaseAndNames(t *testing.T) {
	p := mustPlan(t, "iso", map[string]string{ArgFlavor: "debian", ArgVersion: "v1.2.3"})
	if got, want := p.Release.ArtifactName(), "kairos-debian-bookworm-core-amd64-generic-v1.2.3"; got != want {
		t.Errorf("artifact name %q, want %q", got, want)
	}
	kv, err := release.Parse(p.Release.Render())
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"KAIROS_ID": "kairos", "KAIROS_NAME": "kairos-core-debian-bookworm", "KAIROS_VERSION": "v1.2.3",
		"KAIROS_RELEASE": "v1.2.3", "KAIROS_ARCH": "amd64", "KAIROS_TARGETARCH": "amd64",
		"KAIROS_FLAVOR": "debian", "KAIROS_FLAVOR_RELEASE": "bookworm", "KAIROS_FAMILY": "debian",
		"KAIROS_MODEL": "generic", "KAIROS_VARIANT": "core", "KAIROS_SOFTWARE_VERSION": "",
		"KAIROS_SOFTWARE_VERSION_PREFIX": "",
	} {
		if got, ok := kv[k]; !ok || got != want {
			t.Errorf("%s=%q (present %v), want %q", k, got, ok, want)
		}
	}
	if l := p.Labels(); l["io.kairos.flavor"] != "debian" || l["io.kairos.targetarch"] != "amd64" || l["io.kairos.variant"] != "core" {
		t.Errorf("labels %v", l)
	}
}

// ops decodes a marshalled definition into its operations, in order.
func ops(t *testing.T, st llb.State) []*pb.Op {
	t.Helper()
	def, err := st.Marshal(context.Background(), llb.Platform(amd64))
	if err != nil {
		t.Fatal(err)
	}
	var out []*pb.Op
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		out = append(out, &op)
	}
	return out
}

func convert(t *testing.T, target string) (*Plan, *Graph) {
	p := mustPlan(t, target, map[string]string{ArgFlavor: "debian", ArgVersion: "v9.9.9"})
	g, err := Convert(p, Inputs{
		Base:  llb.Image("docker.io/library/debian:bookworm"),
		Agent: llb.Local("agent"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, g
}

func execs(all []*pb.Op) []*pb.ExecOp {
	var out []*pb.ExecOp
	for _, op := range all {
		if e := op.GetExec(); e != nil {
			out = append(out, e)
		}
	}
	return out
}

func TestImageLLB(t *testing.T) {
	p, g := convert(t, "image")
	all := ops(t, g.Image)

	var install, finalize *pb.ExecOp
	for _, e := range execs(all) {
		cmd := strings.Join(e.Meta.Args, " ")
		switch {
		case strings.Contains(cmd, "apt-get install"):
			install = e
		case strings.Contains(cmd, "finalize.sh"):
			finalize = e
		}
	}
	if install == nil {
		t.Fatal("no apt-get install step")
	}
	cmd := strings.Join(install.Meta.Args, " ")
	for _, pkg := range p.Packages {
		if !strings.Contains(cmd, " "+pkg) {
			t.Errorf("install step lacks %s: %s", pkg, cmd)
		}
	}
	if !slices.Contains(install.Meta.Env, "DEBIAN_FRONTEND=noninteractive") {
		t.Errorf("install env %v lacks DEBIAN_FRONTEND", install.Meta.Env)
	}
	var caches []string
	for _, m := range install.Mounts {
		if m.MountType == pb.MountType_CACHE {
			caches = append(caches, m.Dest)
		}
	}
	if !slices.Contains(caches, "/var/cache/apt/archives") || !slices.Contains(caches, "/var/lib/apt/lists") {
		t.Errorf("install cache mounts %v", caches)
	}

	if finalize == nil {
		t.Fatal("no finalize (initrd) step")
	}
	for _, kv := range []string{"KAIROS_INITRD=dracut", "GRUB_EFI_PLATFORM=x86_64-efi", "GRUB_EFI_NAME=BOOTX64.EFI", "KAIROS_BIOS=yes", "GRUB_MKIMAGE=grub-mkimage"} {
		if !slices.Contains(finalize.Meta.Env, kv) {
			t.Errorf("finalize env %v lacks %s", finalize.Meta.Env, kv)
		}
	}

	files := map[string]*pb.FileActionMkFile{}
	var agentCopy *pb.FileActionCopy
	for _, op := range all {
		f := op.GetFile()
		if f == nil {
			continue
		}
		for _, a := range f.Actions {
			if mk := a.GetMkfile(); mk != nil {
				files[mk.Path] = mk
			}
			if cp := a.GetCopy(); cp != nil && cp.Dest == "/usr/bin/kairos-agent" {
				agentCopy = cp
			}
		}
	}
	rel, ok := files["/etc/kairos-release"]
	if !ok {
		t.Fatal("no /etc/kairos-release written")
	}
	if !strings.Contains(string(rel.Data), `KAIROS_FLAVOR="debian"`) || !strings.Contains(string(rel.Data), `KAIROS_VERSION="v9.9.9"`) {
		t.Errorf("kairos-release content:\n%s", rel.Data)
	}
	for _, want := range []string{
		"/etc/dracut.conf.d/10-kairos.conf",
		"/usr/lib/dracut/modules.d/90kairos/module-setup.sh",
		"/usr/lib/dracut/modules.d/90kairos/kairos-mount.sh",
	} {
		if _, ok := files[want]; !ok {
			t.Errorf("overlay file %s not added", want)
		}
	}
	if m := files["/usr/lib/dracut/modules.d/90kairos/module-setup.sh"]; m != nil && m.Mode != 0o755 {
		t.Errorf("dracut module mode %o, want 755", m.Mode)
	}
	if agentCopy == nil {
		t.Fatal("kairos-agent not copied to /usr/bin/kairos-agent")
	}
	if agentCopy.Mode != 0o755 {
		t.Errorf("kairos-agent mode %o", agentCopy.Mode)
	}
	// Build scripts are mounted read-only, never copied into the image.
	scriptsMounted := false
	for _, m := range finalize.Mounts {
		if m.Dest == scriptsMount && m.Readonly {
			scriptsMounted = true
		}
	}
	if !scriptsMounted {
		t.Errorf("finalize does not mount the build scripts read-only at %s", scriptsMount)
	}

	cfg := ImageConfig(p, nil)
	if cfg.Config.Entrypoint != nil || cfg.Config.Labels["io.kairos.release"] != "v9.9.9" || cfg.Platform.Architecture != "amd64" {
		t.Errorf("image config %+v", cfg.Config)
	}
}

func TestISOLLB(t *testing.T) {
	_, g := convert(t, "iso")
	var mkiso *pb.ExecOp
	for _, e := range execs(ops(t, g.Artifacts)) {
		if strings.Contains(strings.Join(e.Meta.Args, " "), "mkiso.sh") {
			mkiso = e
		}
	}
	if mkiso == nil {
		t.Fatal("no ISO assembly step")
	}
	if !slices.Contains(mkiso.Meta.Args, "kairos-debian-bookworm-core-amd64-generic-v9.9.9") {
		t.Errorf("mkiso args %v lack the artifact name", mkiso.Meta.Args)
	}
	var dests []string
	for _, m := range mkiso.Mounts {
		dests = append(dests, m.Dest)
		if m.Dest == "/rootfs" && !m.Readonly {
			t.Errorf("image mounted writable into the ISO step")
		}
	}
	for _, want := range []string{"/rootfs", "/out", scriptsMount} {
		if !slices.Contains(dests, want) {
			t.Errorf("ISO step mounts %v lack %s", dests, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote([]string{"a", "b c", "it's", "x=1"}); got != `a 'b c' 'it'\''s' x=1` {
		t.Errorf("shellQuote = %s", got)
	}
}
