package frontend

import (
	"context"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/internal/release"
	"github.com/kairos-io/kairos/overlay"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/errdefs"
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
		{"floppy", map[string]string{ArgFlavor: "debian"}, "valid: image, iso, recovery, netboot, raw, qcow2, all"},
		{"iso", map[string]string{ArgFlavor: "debian", ArgVariant: "huge"}, "one of core, standard"},
		{"iso", map[string]string{ArgFlavor: "debian", ArgVersion: "v1/2"}, "VERSION"},
		{"iso", map[string]string{ArgFlavor: "debian", ArgModel: "../../evil"}, "MODEL"},
		{"netboot", map[string]string{ArgFlavor: "debian", ArgNetbootURL: "http://h/x\nshell"}, "NETBOOT_URL"},
		{"image", map[string]string{ArgFlavor: "debian", ArgImageRepo: "quay.io/kairos/debian:v1"}, "IMAGE_REPO"},
		{"image", map[string]string{ArgFlavor: "debian", ArgImageRepo: "quay.io/kairos/debian x"}, "IMAGE_REPO"},
		{"image", map[string]string{ArgFlavor: "debian", ArgImageRepo: "Quay.io/Kairos"}, "IMAGE_REPO"},
		{"image", map[string]string{ArgFlavor: "debian", ArgSecureBoot: "yes"}, "SECURE_BOOT=\"yes\": must be auto, true or false"},
	} {
		if _, err := ParseOptions(tc.target, tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseOptions(%q, %v) = %v, want error containing %q", tc.target, tc.args, err, tc.want)
		}
	}
}

// TestSecureBootPlan: auto takes the flavor's signed chain where it has
// one, false never does, true on a flavor or architecture without one is
// refused with the reason.
func TestSecureBootPlan(t *testing.T) {
	cat, err := flavors.Load()
	if err != nil {
		t.Fatal(err)
	}
	arm64 := ocispecs.Platform{OS: "linux", Architecture: "arm64"}
	for _, tc := range []struct {
		flavor, value string
		platform      ocispecs.Platform
		signed        bool
		err           string
	}{
		{"debian", "", amd64, true, ""},
		{"debian", SecureBootOn, amd64, true, ""},
		{"debian", SecureBootOff, amd64, false, ""},
		{"debian", "", arm64, false, ""},
		{"debian", SecureBootOn, arm64, false, "flavor debian-bookworm cannot boot arm64 with Secure Boot: it has a signed boot chain only for amd64"},
		{"alpine", "", amd64, false, ""},
		{"alpine", SecureBootOn, amd64, false, "flavor alpine-3.21 cannot boot amd64 with Secure Boot: it has no signed boot chain"},
	} {
		o, err := ParseOptions("iso", map[string]string{ArgFlavor: tc.flavor, ArgSecureBoot: tc.value})
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPlan(cat, o, tc.platform)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %s %q: error %v, want %q", tc.flavor, tc.platform.Architecture, tc.value, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := p.SecureBoot != nil; got != tc.signed {
			t.Errorf("%s %s %q: signed chain %v, want %v", tc.flavor, tc.platform.Architecture, tc.value, got, tc.signed)
		}
		if tc.signed && !slices.Contains(p.Packages, "shim-signed") {
			t.Errorf("%s: the signed chain's packages are not installed: %v", tc.flavor, p.Packages)
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

// IMAGE_REPO becomes KAIROS_IMAGE_REPO, next to KAIROS_IMAGE_LABEL (the
// image's tag), where the agent looks for newer releases.
func TestImageRepo(t *testing.T) {
	p := mustPlan(t, "image", map[string]string{ArgFlavor: "debian", ArgVersion: "v1.2.3", ArgImageRepo: "registry.example.com:5000/kairos/debian"})
	rel := string(p.Release.Render())
	for _, want := range []string{"KAIROS_IMAGE_REPO=\"registry.example.com:5000/kairos/debian\"\n", "KAIROS_IMAGE_LABEL=\"bookworm-core-amd64-generic-v1.2.3\"\n"} {
		if !strings.Contains(rel, want) {
			t.Errorf("kairos-release lacks %q:\n%s", want, rel)
		}
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
	tools := llb.Local("tools")
	g, err := Convert(p, Inputs{
		Base:  llb.Image("docker.io/library/debian:bookworm"),
		Agent: llb.Local("agent"),
		Tools: &tools, ToolsPath: ToolsFile,
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

	var install, finalize, boot *pb.ExecOp
	for _, e := range execs(all) {
		cmd := strings.Join(e.Meta.Args, " ")
		switch {
		case strings.Contains(cmd, "apt-get install"):
			install = e
		case strings.Contains(cmd, "finalize.sh"):
			finalize = e
		case strings.Contains(cmd, "boot.sh"):
			boot = e
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

	if finalize == nil || boot == nil {
		t.Fatal("no finalize or boot (initrd) step")
	}
	for _, kv := range []string{"KAIROS_INITRD=dracut", "GRUB_EFI_PLATFORM=x86_64-efi", "GRUB_EFI_NAME=BOOTX64.EFI", "KAIROS_BIOS=yes", "GRUB_MKIMAGE=grub-mkimage"} {
		if !slices.Contains(boot.Meta.Env, kv) {
			t.Errorf("boot env %v lacks %s", boot.Meta.Env, kv)
		}
	}
	if !slices.Contains(finalize.Meta.Env, "KAIROS_INIT=systemd") {
		t.Errorf("finalize env %v lacks KAIROS_INIT", finalize.Meta.Env)
	}

	files, copies := fileActions(all)
	agentCopy := copies["/usr/bin/kairos-agent"]
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

	cfg := ImageConfig(p, nil, nil)
	if cfg.Config.Entrypoint != nil || cfg.Config.Labels["io.kairos.release"] != "v9.9.9" || cfg.Platform.Architecture != "amd64" ||
		!slices.Equal(cfg.Config.Cmd, []string{"/bin/sh"}) {
		t.Errorf("image config %+v", cfg.Config)
	}
	base := &dockerspec.DockerOCIImage{}
	base.Config.Cmd = []string{"/bin/bash"}
	if cfg := ImageConfig(p, nil, base); !slices.Equal(cfg.Config.Cmd, []string{"/bin/bash"}) {
		t.Errorf("the base's command is not kept: %v", cfg.Config.Cmd)
	}
}

func TestArtifactsLLB(t *testing.T) {
	for target, kinds := range map[string][]string{
		"iso": {"iso"}, "recovery": {"recovery"}, "netboot": {"netboot"}, "raw": {"raw"}, "qcow2": {"qcow2"},
		"all": {"iso", "recovery", "netboot", "raw", "qcow2"},
	} {
		t.Run(target, func(t *testing.T) { testArtifactsLLB(t, target, kinds) })
	}
}

func testArtifactsLLB(t *testing.T, target string, kinds []string) {
	_, g := convert(t, target)
	var step *pb.ExecOp
	for _, e := range execs(ops(t, g.Artifacts)) {
		if len(e.Meta.Args) > 1 && e.Meta.Args[0] == "/"+ToolsFile && e.Meta.Args[1] == "artifacts" {
			step = e
		}
	}
	if step == nil {
		t.Fatal("no artifact step")
	}
	if got := step.Meta.Args[2 : 2+len(kinds)]; !slices.Equal(got, kinds) {
		t.Errorf("artifact kinds %v, want %v", got, kinds)
	}
	flags := strings.Join(step.Meta.Args[2+len(kinds):], " ")
	if want := "--source dir:/rootfs --output /out --name kairos-debian-bookworm-core-amd64-generic-v9.9.9 --compression gzip --block-cache " + blockCacheMount; flags != want {
		t.Errorf("artifact flags %q, want %q", flags, want)
	}
	var dests []string
	for _, m := range step.Mounts {
		dests = append(dests, m.Dest)
		if m.Dest == "/rootfs" && !m.Readonly {
			t.Errorf("image mounted writable into the artifact step")
		}
	}
	for _, want := range []string{"/", "/rootfs", "/out", "/tmp", blockCacheMount} {
		if !slices.Contains(dests, want) {
			t.Errorf("artifact step mounts %v lack %s", dests, want)
		}
	}
	for _, m := range step.Mounts {
		if m.Dest == blockCacheMount && (m.MountType != pb.MountType_CACHE || m.CacheOpt.GetID() != blockCacheID) {
			t.Errorf("the block cache at %s is not the %s cache mount: %v", blockCacheMount, blockCacheID, m)
		}
	}
	p := mustPlan(t, target, map[string]string{ArgFlavor: "debian"})
	if _, err := Convert(p, Inputs{Base: llb.Image("debian"), Agent: llb.Local("agent")}); err == nil || !strings.Contains(err.Error(), "artifact writer") {
		t.Errorf("Convert without the tools input: %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote([]string{"a", "b c", "it's", "x=1"}); got != `a 'b c' 'it'\''s' x=1` {
		t.Errorf("shellQuote = %s", got)
	}
}

// fileActions collects the mkfile and copy actions of a definition by
// destination path.
func fileActions(all []*pb.Op) (map[string]*pb.FileActionMkFile, map[string]*pb.FileActionCopy) {
	files := map[string]*pb.FileActionMkFile{}
	copies := map[string]*pb.FileActionCopy{}
	for _, op := range all {
		f := op.GetFile()
		if f == nil {
			continue
		}
		for _, a := range f.Actions {
			if mk := a.GetMkfile(); mk != nil {
				files[mk.Path] = mk
			}
			if cp := a.GetCopy(); cp != nil {
				copies[cp.Dest] = cp
			}
		}
	}
	return files, copies
}

func TestStandardVariantLLB(t *testing.T) {
	p := mustPlan(t, "image", map[string]string{ArgFlavor: "debian", ArgVariant: "standard", ArgK3SVersion: "v1.30.5+k3s1"})
	if p.K3s == nil || p.Release.SoftwareVersion != "v1.30.5+k3s1" || p.Release.SoftwareVersionPrefix != "k3s" {
		t.Fatalf("plan: k3s %+v, release %+v", p.K3s, p.Release)
	}
	if got, want := p.Release.ArtifactName(), "kairos-debian-bookworm-standard-amd64-generic-v0.0.0-k3sv1.30.5+k3s1"; got != want {
		t.Errorf("artifact name %q, want %q", got, want)
	}
	if _, err := Convert(p, Inputs{Base: llb.Image("debian"), Agent: llb.Local("agent")}); err == nil {
		t.Error("Convert without a k3s input succeeded")
	}
	k3s := llb.Local("k3s")
	g, err := Convert(p, Inputs{Base: llb.Image("debian"), Agent: llb.Local("agent"), K3s: &k3s})
	if err != nil {
		t.Fatal(err)
	}
	files, copies := fileActions(ops(t, g.Image))
	cp, ok := copies["/usr/bin/k3s"]
	if !ok {
		t.Fatal("k3s not copied to /usr/bin/k3s")
	}
	if cp.Mode != 0o755 || cp.Src != "/k3s" {
		t.Errorf("k3s copy %+v", cp)
	}
	for _, unit := range []string{"/usr/lib/systemd/system/k3s.service", "/usr/lib/systemd/system/k3s-agent.service"} {
		mk, ok := files[unit]
		if !ok {
			t.Errorf("%s not added", unit)
			continue
		}
		if !strings.Contains(string(mk.Data), "ExecStart=/usr/bin/k3s ") || !strings.Contains(string(mk.Data), "EnvironmentFile=-/etc/sysconfig/%N") {
			t.Errorf("%s does not run /usr/bin/k3s with /etc/sysconfig:\n%s", unit, mk.Data)
		}
	}
	rel := string(files["/etc/kairos-release"].Data)
	for _, want := range []string{`KAIROS_SOFTWARE_VERSION="v1.30.5+k3s1"`, `KAIROS_SOFTWARE_VERSION_PREFIX="k3s"`, `KAIROS_VARIANT="standard"`} {
		if !strings.Contains(rel, want) {
			t.Errorf("kairos-release lacks %s:\n%s", want, rel)
		}
	}
	if l := p.Labels(); l["io.kairos.software-version"] != "v1.30.5+k3s1" || l["io.kairos.software-version-prefix"] != "k3s" {
		t.Errorf("labels %v", l)
	}
	// The services ship disabled: finalize enables only Kairos' own units.
	script, err := overlay.Tree("build")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range script {
		if f.Path == "finalize.sh" && strings.Contains(string(f.Data), "k3s") {
			t.Error("finalize.sh mentions k3s: the k3s services must stay disabled until the agent enables them")
		}
	}

	// The core variant has none of it.
	core := mustPlan(t, "image", map[string]string{ArgFlavor: "debian"})
	g, err = Convert(core, Inputs{Base: llb.Image("debian"), Agent: llb.Local("agent")})
	if err != nil {
		t.Fatal(err)
	}
	files, copies = fileActions(ops(t, g.Image))
	if _, ok := copies["/usr/bin/k3s"]; ok {
		t.Error("core variant has k3s")
	}
	if _, ok := files["/usr/lib/systemd/system/k3s.service"]; ok {
		t.Error("core variant has the k3s unit")
	}
}

func TestK3sDownloadLLB(t *testing.T) {
	amd := newK3sPlan("v1.31.2+k3s1", "amd64")
	if amd.BinaryURL != "https://github.com/k3s-io/k3s/releases/download/v1.31.2%2Bk3s1/k3s" ||
		amd.SumsURL != "https://github.com/k3s-io/k3s/releases/download/v1.31.2%2Bk3s1/sha256sum-amd64.txt" {
		t.Errorf("amd64 URLs %+v", amd)
	}
	arm := newK3sPlan("v1.31.2+k3s1", "arm64")
	if arm.BinaryName != "k3s-arm64" || !strings.HasSuffix(arm.SumsURL, "/sha256sum-arm64.txt") {
		t.Errorf("arm64 plan %+v", arm)
	}

	const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	sums := "0000000000000000000000000000000000000000000000000000000000000000  k3s-airgap-images-amd64.tar\n" + sum + "  k3s\n"
	d, err := ParseK3sSums(amd, []byte(sums))
	if err != nil || d.String() != "sha256:"+sum {
		t.Fatalf("ParseK3sSums = %v, %v", d, err)
	}
	if _, err := ParseK3sSums(arm, []byte(sums)); err == nil || !strings.Contains(err.Error(), "k3s-arm64") {
		t.Errorf("missing arm64 entry: %v", err)
	}
	if _, err := ParseK3sSums(amd, []byte("zz  k3s\n")); err == nil {
		t.Error("bad checksum accepted")
	}

	var src *pb.SourceOp
	for _, op := range ops(t, K3sDownload(amd, d)) {
		if s := op.GetSource(); s != nil {
			src = s
		}
	}
	if src == nil || src.Identifier != amd.BinaryURL {
		t.Fatalf("download source %+v", src)
	}
	if src.Attrs[pb.AttrHTTPChecksum] != "sha256:"+sum || src.Attrs[pb.AttrHTTPFilename] != "k3s" || src.Attrs[pb.AttrHTTPPerm] != "0755" {
		t.Errorf("download attrs %v", src.Attrs)
	}
}

func TestSubrequests(t *testing.T) {
	l := targetList()
	var names []string
	for _, tg := range l.Targets {
		names = append(names, tg.Name)
		if tg.Default != (tg.Name == "image") || tg.Description == "" {
			t.Errorf("target %+v", tg)
		}
	}
	if !slices.Equal(names, TargetNames()) {
		t.Errorf("targets %v", names)
	}
	o, err := targetOutline("iso")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range o.Args {
		args = append(args, a.Name)
	}
	for _, want := range []string{ArgFlavor, ArgFlavorRelease, ArgBaseImage, ArgVariant, ArgVersion, ArgModel, ArgK3SVersion} {
		if !slices.Contains(args, want) {
			t.Errorf("outline args %v lack %s", args, want)
		}
	}
	if _, err := targetOutline("floppy"); err == nil {
		t.Error("outline of an unknown target succeeded")
	}
}

func TestBlamePointsAtTheSpecLine(t *testing.T) {
	data := []byte("# syntax=x\nflavor: gentoo\nversion: v1.0.0\n")
	spec, err := ParseSpec("kairos.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	// Build gives every error withSpecSource: the line blamed is the one a
	// BuildKit client shows (TestSpecErrorsCarryTheSourceLocation runs it
	// all through Build).
	sm := llb.NewSourceMap(nil, "kairos.yaml", specLanguage, data)
	sourceLine := func(err error) int32 {
		srcs := errdefs.Sources(withSpecSource(err, sm))
		if len(srcs) != 1 || len(srcs[0].Ranges) != 1 {
			return 0
		}
		return srcs[0].Ranges[0].Start.Line
	}
	cat, _ := flavors.Load()
	_, lookupErr := cat.Lookup("gentoo", "")
	blamed := blame(spec, map[string]string{}, ArgFlavor, lookupErr)
	if got := blamed.Error(); !strings.HasPrefix(got, "kairos.yaml:2:9: flavor: ") || !strings.Contains(got, "debian") {
		t.Errorf("from the spec: %q", got)
	}
	if l := sourceLine(blamed); l != 2 {
		t.Errorf("from the spec: source line %d, want 2", l)
	}
	// A value the caller passed is reported as the build arg it is.
	argErr := &ArgError{Arg: ArgVersion, Value: "v/1", Msg: "bad"}
	blamed = blame(spec, map[string]string{ArgVersion: "v/1"}, ArgVersion, argErr)
	if got := blamed.Error(); got != `build arg VERSION="v/1": bad` {
		t.Errorf("from the args: %q", got)
	}
	if l := sourceLine(blamed); l != 0 {
		t.Errorf("from the args: source line %d, want none", l)
	}
	blamed = blame(spec, nil, ArgVersion, argErr)
	if got := blamed.Error(); !strings.HasPrefix(got, "kairos.yaml:3:10: version: \"v/1\": bad") {
		t.Errorf("arg error from the spec: %q", got)
	}
	if l := sourceLine(blamed); l != 3 {
		t.Errorf("arg error from the spec: source line %d, want 3", l)
	}
}

// What users type: a flavor with several releases and no FLAVOR_RELEASE is
// its default release, through to the LLB (the Leap base, zypper, the
// release in every name); upstream's flavor names work the same.
func TestDefaultReleaseAndAliases(t *testing.T) {
	for _, c := range []struct{ flavor, release, base, id string }{
		{"opensuse", "", "registry.opensuse.org/opensuse/leap:15.6", "leap-15.6"},
		{"opensuse-leap", "", "registry.opensuse.org/opensuse/leap:15.6", "leap-15.6"},
		{"opensuse-tumbleweed", "", "registry.opensuse.org/opensuse/tumbleweed", "tumbleweed"},
		{"rockylinux", "", "", "9"},
		{"alpine", "", "", "3.21"},
	} {
		args := map[string]string{ArgFlavor: c.flavor, ArgVersion: "v9.9.9"}
		p := mustPlan(t, "image", args)
		if p.Release.FlavorRelease != c.id || (c.base != "" && !strings.HasPrefix(p.BaseImage, c.base)) {
			t.Errorf("FLAVOR=%s: release %s, base %s; want %s, %s", c.flavor, p.Release.FlavorRelease, p.BaseImage, c.id, c.base)
		}
		if !strings.Contains(p.Release.ArtifactName(), "-"+c.id+"-") || strings.Contains(p.Release.ArtifactName(), c.flavor+"-"+c.flavor) {
			t.Errorf("FLAVOR=%s: artifact name %s", c.flavor, p.Release.ArtifactName())
		}
		g, err := Convert(p, Inputs{Base: llb.Image(p.BaseImage), Agent: llb.Local("agent")})
		if err != nil {
			t.Fatalf("FLAVOR=%s: %v", c.flavor, err)
		}
		all := ops(t, g.Image)
		var base string
		var install bool
		for _, op := range all {
			if s := op.GetSource(); s != nil && strings.HasPrefix(s.Identifier, "docker-image://") {
				base = s.Identifier
			}
			if e := op.GetExec(); e != nil && strings.Contains(strings.Join(e.Meta.Args, " "), p.PackageManager.Install) {
				install = true
			}
		}
		if !strings.Contains(base, strings.SplitN(p.BaseImage, ":", 2)[0]) || !install {
			t.Errorf("FLAVOR=%s: the LLB starts from %q (want %s), install step %v", c.flavor, base, p.BaseImage, install)
		}
	}
}
