package frontend

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/internal/llbdump"
	"github.com/kairos-io/kairos/internal/release"
	"github.com/kairos-io/kairos/overlay"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Golden LLB tests. Only Debian is built for real on the build machines;
// every other flavor is checked here, at the LLB level, by two independent
// means:
//
//   - a readable dump of the marshalled definition of each build (made by
//     internal/llbdump), compared with
//     frontend/testdata/golden/<flavor>-<arch>-<variant>-<target>.llb.txt,
//     so any change to what the frontend emits shows up as a reviewable diff
//     (regenerate with: go test ./frontend -run TestGoldenLLB -update);
//   - semantic checks of the same definition against the flavor data, which
//     hold whatever the golden files say, so a careless -update cannot bless
//     wrong output.

var updateGolden = flag.Bool("update", false, "rewrite frontend/testdata/golden/*.llb.txt from the current LLB")

const (
	goldenDir        = "testdata/golden"
	goldenVersion    = "v1.0.0"
	goldenK3sVersion = "v1.31.2+k3s1"
)

// goldenEpoch stamps every file of the golden builds (SOURCE_DATE_EPOCH).
var goldenEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// goldenCase is one build of the golden matrix.
type goldenCase struct {
	flavor   *flavors.Flavor
	arch     string
	variant  string
	target   Target
	fileName string
}

func goldenCases(cat *flavors.Catalog) []goldenCase {
	var out []goldenCase
	add := func(f *flavors.Flavor, arch, variant string, target Target) {
		out = append(out, goldenCase{f, arch, variant, target,
			fmt.Sprintf("%s-%s-%s-%s.llb.txt", f.ID(), arch, variant, target)})
	}
	for _, f := range cat.Flavors() {
		for _, arch := range []string{"amd64", "arm64"} {
			for _, target := range []Target{TargetImage, TargetISO} {
				add(f, arch, "core", target)
			}
		}
		add(f, "amd64", "standard", TargetImage)
	}
	return out
}

func TestGoldenLLB(t *testing.T) {
	cat, err := flavors.Load()
	if err != nil {
		t.Fatal(err)
	}
	origins, err := overlayOrigins()
	if err != nil {
		t.Fatal(err)
	}
	cases := goldenCases(cat)
	ran := map[string]bool{}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.fileName, ".llb.txt"), func(t *testing.T) {
			ran[tc.fileName] = true
			opts := llbdump.Options{Header: tc.header(), Epoch: goldenEpoch, Origins: origins}
			g, def := goldenBuild(t, cat, tc)
			dump, err := llbdump.Dump(def, opts)
			if err != nil {
				t.Fatal(err)
			}
			// The same build converted and marshalled again must dump the
			// same: nothing in the LLB may depend on map order or the clock.
			_, again := goldenBuild(t, cat, tc)
			if dump2, err := llbdump.Dump(again, opts); err != nil || dump2 != dump {
				t.Errorf("a second conversion dumps differently (%v):\n%s", err, llbdump.Diff(dump, dump2, 3, 40))
			}
			compareGolden(t, filepath.Join(goldenDir, tc.fileName), dump)
			checkSemantics(t, cat, tc, g)
		})
	}
	// Golden files of builds that no longer exist would go stale unnoticed.
	// Only when every case ran: a -run filter must not delete the others.
	if len(ran) != len(cases) {
		return
	}
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".llb.txt") || ran[e.Name()] {
			continue
		}
		name := filepath.Join(goldenDir, e.Name())
		if *updateGolden {
			if err := os.Remove(name); err != nil {
				t.Error(err)
			}
			continue
		}
		t.Errorf("%s belongs to no build of the golden matrix; remove it with: go test ./frontend -run TestGoldenLLB -update", name)
	}
}

func (tc goldenCase) header() string {
	return fmt.Sprintf(`# LLB of flavor %s, platform linux/%s, variant %s, target %s.
# Inputs: VERSION=%s, K3S_VERSION=%s (standard only), base image
# %s, agent and k3s from local contexts, epoch %s.
# Written by TestGoldenLLB in frontend/golden_test.go; after an intended change
# regenerate with: go test ./frontend -run TestGoldenLLB -update
# Ops are listed inputs first; "#N" is op N of this file, "input I" is the
# op's I-th input.
`, tc.flavor.ID(), tc.arch, tc.variant, tc.target, goldenVersion, goldenK3sVersion,
		tc.flavor.BaseImage, goldenEpoch.Format(time.RFC3339))
}

// goldenBuild plans, converts and marshals one case as the frontend does.
func goldenBuild(t *testing.T, cat *flavors.Catalog, tc goldenCase) (*llbGraph, *llb.Definition) {
	t.Helper()
	args := map[string]string{
		ArgFlavor:        tc.flavor.Name,
		ArgFlavorRelease: tc.flavor.Release,
		ArgVersion:       goldenVersion,
		ArgVariant:       tc.variant,
	}
	if tc.variant == "standard" {
		args[ArgK3SVersion] = goldenK3sVersion
	}
	o, err := ParseOptions(string(tc.target), args)
	if err != nil {
		t.Fatal(err)
	}
	platform := ocispecs.Platform{OS: "linux", Architecture: tc.arch}
	p, err := NewPlan(cat, o, platform)
	if err != nil {
		t.Fatal(err)
	}
	epoch := goldenEpoch
	in := Inputs{
		Base:  llb.Image(tc.flavor.BaseImage),
		Agent: llb.Local("agent"),
		Epoch: &epoch,
	}
	if tc.target != TargetImage {
		// The writer always runs on amd64 here, whatever the target
		// platform, as it would on an amd64 builder.
		tools := llb.Local("tools").Platform(ocispecs.Platform{OS: "linux", Architecture: "amd64"})
		in.Tools, in.ToolsPath = &tools, ToolsFile
	}
	if tc.variant == "standard" {
		k3s := llb.Local("k3s")
		in.K3s = &k3s
	}
	cg, err := Convert(p, in)
	if err != nil {
		t.Fatal(err)
	}
	out := cg.Image
	if p.Artifacts != nil {
		out = cg.Artifacts
	}
	// BuildKit stamps local sources with an ID random per marshal (a
	// session's locals are not shared by default): fixed here.
	def, err := out.Marshal(context.Background(), llb.Platform(platform), llb.LocalUniqueID("golden"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := parseLLB(def)
	if err != nil {
		t.Fatal(err)
	}
	return g, def
}

// compareGolden checks got against the golden file, or rewrites it with -update.
func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v\ncreate it with: go test ./frontend -run TestGoldenLLB -update", err)
	}
	if string(want) == got {
		return
	}
	t.Errorf("the LLB differs from %s (- golden, + now):\n%s\nif the change is intended, review it and regenerate with: go test ./frontend -run TestGoldenLLB -update",
		name, llbdump.Diff(string(want), got, 3, 80))
}

// ---------------------------------------------------------------------------
// What the dump and the checks share

// llbGraph is the dumper's decoded definition, with the queries the
// semantic checks add (methods cannot be declared on llbdump.Graph here).
type llbGraph struct{ *llbdump.Graph }

func parseLLB(def *llb.Definition) (*llbGraph, error) {
	g, err := llbdump.Parse(def)
	if err != nil {
		return nil, err
	}
	return &llbGraph{g}, nil
}

// overlayOrigins maps the sha256 of every embedded overlay file to its path
// in the overlay, so the dump names where a file's content comes from
// instead of repeating it.
func overlayOrigins() (map[string]string, error) {
	trees := []string{"rootfs", "build", "iso"}
	for _, kind := range []string{"init", "initrd", "k3s"} {
		for _, name := range knownOverlayTrees[kind] {
			trees = append(trees, kind+"/"+name)
		}
	}
	sort.Strings(trees)
	out := map[string]string{}
	for _, tree := range trees {
		files, err := overlay.Tree(tree)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			sum := llbdump.ContentSum(f.Data)
			if _, ok := out[sum]; !ok {
				out[sum] = "overlay/" + tree + "/" + f.Path
			}
		}
	}
	return out, nil
}

// knownOverlayTrees are the per-init and per-initrd overlay directories
// (flavors.validate allows exactly these init and initrd values).
var knownOverlayTrees = map[string][]string{
	"init":   {"openrc", "systemd"},
	"initrd": {"dracut", "mkinitfs"},
	"k3s":    {"openrc", "systemd"},
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// ---------------------------------------------------------------------------
// Semantic checks

// Expected per-architecture boot values, written out here rather than taken
// from bootPlatforms so that a wrong table entry fails.
var goldenBoot = map[string]struct{ grubPlatform, efiName, bios, shimGrub, shimMok string }{
	"amd64": {"x86_64-efi", "BOOTX64.EFI", "yes", "grubx64.efi", "mmx64.efi"},
	"arm64": {"arm64-efi", "BOOTAA64.EFI", "no", "grubaa64.efi", "mmaa64.efi"},
}

// overlayMarkers are files that must be in the image for each init system
// and initrd tool, with their modes: a check that does not depend on
// overlay.Tree listing the right files.
var overlayMarkers = map[string]map[string]fs.FileMode{
	"init/systemd": {
		"/usr/lib/systemd/system/cos-setup-boot.service":    0o644,
		"/usr/lib/systemd/system/kairos-ssh-keygen.service": 0o644,
	},
	"init/openrc": {
		"/etc/init.d/cos-setup-boot":    0o755,
		"/etc/init.d/kairos-ssh-keygen": 0o755,
	},
	"initrd/dracut": {
		"/etc/dracut.conf.d/10-kairos.conf":                  0o644,
		"/usr/lib/dracut/modules.d/90kairos/module-setup.sh": 0o755,
		"/usr/lib/dracut/modules.d/90kairos/kairos-mount.sh": 0o755,
	},
	"initrd/mkinitfs": {
		"/etc/mkinitfs/mkinitfs.conf":           0o644,
		"/etc/mkinitfs/features.d/kairos.files": 0o644,
		"/usr/lib/kairos/mkinitfs/init":         0o755,
	},
	"k3s/systemd": {
		"/usr/lib/systemd/system/k3s.service":       0o644,
		"/usr/lib/systemd/system/k3s-agent.service": 0o644,
	},
	"k3s/openrc": {
		"/etc/init.d/k3s":       0o755,
		"/etc/init.d/k3s-agent": 0o755,
	},
}

// imageFiles is what the image chain writes: files by path, copies by
// destination (with the op that made them).
type imageFiles struct {
	mkfiles map[string]*pb.FileActionMkFile
	copies  map[string]copyAction
}

type copyAction struct {
	copy *pb.FileActionCopy
	from digest.Digest // the op the copy reads from ("" for scratch or an earlier action)
}

func checkSemantics(t *testing.T, cat *flavors.Catalog, tc goldenCase, g *llbGraph) {
	f := tc.flavor
	pm := cat.PackageManager(f)
	boot := goldenBoot[tc.arch]
	pkgs, err := f.PackagesFor(tc.arch)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pkgs, f.Kernel[tc.arch]) || f.Kernel[tc.arch] == "" {
		t.Errorf("PackagesFor(%s) = %v lacks the kernel %q", tc.arch, pkgs, f.Kernel[tc.arch])
	}
	// SECURE_BOOT=auto: the flavor's signed chain where it has one.
	signedChain, signed := f.SecureBoot[tc.arch]
	if signed {
		pkgs = append(pkgs, signedChain.Packages...)
	}

	// Execs and images run or pull for the target platform; file ops and
	// local sources are platform-independent.
	for _, d := range g.Order {
		op := g.Ops[d]
		pl := op.Platform
		needs := op.GetExec() != nil || strings.HasPrefix(op.GetSource().GetIdentifier(), "docker-image://")
		if tc.target != TargetImage && (d == digest.Digest(g.Out.Digest) || op.GetSource().GetIdentifier() == "local://tools") {
			continue // the artifact writer runs on the builder; checked below
		}
		if (needs || pl != nil) && (pl == nil || pl.OS != "linux" || pl.Architecture != tc.arch) {
			t.Errorf("op #%d (%s) has platform %v, want linux/%s", g.Num[d], g.Names[d], pl, tc.arch)
		}
	}

	// The image is the finalize step's root: the result of the image target,
	// the read-only /rootfs of the artifact step.
	var imageTop digest.Digest
	switch tc.target {
	case TargetImage:
		if g.Out.Index != 0 {
			t.Errorf("image result is output %d of its op", g.Out.Index)
		}
		imageTop = digest.Digest(g.Out.Digest)
	case TargetISO:
		imageTop = checkArtifactStep(t, tc, pm, g)
		if imageTop == "" {
			return
		}
	}

	chain := g.rootChain(imageTop)
	// The image's last step adds the kernel's boot files, made on their
	// own branch, on top of the finalize step.
	bootCopy := g.Ops[chain[0]].GetFile()
	if bootCopy == nil || len(bootCopy.Actions) != 1 || bootCopy.Actions[0].GetCopy() == nil {
		t.Fatalf("the image's last step is not the copy of the boot files: top op #%d %q", g.Num[chain[0]], g.Names[chain[0]])
	}
	top := g.Ops[chain[1]]
	finalize := top.GetExec()
	if finalize == nil || !slices.Contains(finalize.Meta.Args, scriptsMount+"/build/finalize.sh") {
		t.Fatalf("the boot files are not added over the finalize step: op #%d %q", g.Num[chain[1]], g.Names[chain[1]])
	}
	bootRef := g.Input(g.Ops[chain[0]], bootCopy.Actions[0].SecondaryInput)
	bootOp := g.Ops[bootRef].GetExec()
	if bootOp == nil || !slices.Equal(bootOp.Meta.Args, []string{"/bin/sh", scriptsMount + "/build/boot.sh"}) {
		t.Fatalf("the boot files do not come from boot.sh: op #%d %q", g.Num[bootRef], g.Names[bootRef])
	}
	bottom := g.Ops[chain[len(chain)-1]].GetSource()
	wantBase := "docker-image://" + f.BaseImage
	if named, err := reference.ParseNormalizedNamed(f.BaseImage); err == nil {
		wantBase = "docker-image://" + reference.TagNameOnly(named).String()
	} else {
		t.Errorf("base_image %q: %v", f.BaseImage, err)
	}
	if bottom == nil || bottom.Identifier != wantBase {
		t.Errorf("the image chain starts from %v, want %s", bottom, wantBase)
	}

	// Package installation: the first step on the base, once.
	var installs []digest.Digest
	for _, d := range chain {
		if s, ok := shellScript(g.Ops[d].GetExec()); ok && strings.Contains(s, pm.Install+" ") {
			installs = append(installs, d)
		}
	}
	if len(installs) != 1 {
		t.Fatalf("image chain has %d steps running %q, want 1", len(installs), pm.Install)
	}
	if installs[0] != chain[len(chain)-2] {
		t.Errorf("package installation is not the first step on the base image (slow steps first keep the cache)")
	}
	checkInstall(t, "image install", f, pm, tc.arch, g.Ops[installs[0]].GetExec(), f.PreInstall, pkgs)

	// boot.sh: the initrd and boot assets, from the flavor's data, on a
	// branch of the package step holding Kairos' own files and the agent
	// (not the user's overlay, cloud-config or version), written to its
	// own output mount.
	checkEnv(t, "boot", bootOp.Meta.Env, map[string]string{
		"KAIROS_INITRD":     f.Initrd,
		"GRUB_MKIMAGE":      f.Grub.Mkimage,
		"GRUB_LIB":          f.Grub.Lib,
		"GRUB_EFI_PLATFORM": boot.grubPlatform,
		"GRUB_EFI_NAME":     boot.efiName,
		"KAIROS_BIOS":       boot.bios,
		"KAIROS_BOOT_OUT":   bootOutMount,
	})
	signedEnv := map[string]string{"KAIROS_SHIM": "", "KAIROS_SIGNED_GRUB": "", "KAIROS_MOK_MANAGER": "", "KAIROS_GRUB_PREFIX": ""}
	if signed {
		signedEnv = map[string]string{"KAIROS_SHIM": signedChain.Shim, "KAIROS_SIGNED_GRUB": signedChain.Grub, "KAIROS_MOK_MANAGER": signedChain.MokManager,
			"KAIROS_GRUB_PREFIX": signedChain.GrubPrefix, "SHIM_GRUB_NAME": boot.shimGrub, "SHIM_MOK_NAME": boot.shimMok}
	}
	for k, v := range signedEnv {
		if v == "" {
			checkNoEnv(t, "boot", bootOp.Meta.Env, k)
			delete(signedEnv, k)
		}
	}
	checkEnv(t, "boot", bootOp.Meta.Env, signedEnv)
	g.checkScriptsMount(t, "boot", g.Ops[bootRef], "build/boot.sh")
	copied := g.Ops[chain[0]].Inputs[bootCopy.Actions[0].SecondaryInput]
	if m := mountAt(bootOp, bootOutMount); m == nil || m.Input != -1 || m.Output != copied.Index {
		t.Errorf("boot.sh's output mount %s is not a scratch output copied into the image", bootOutMount)
	}
	bootChain := g.rootChain(bootRef)
	if !slices.Contains(bootChain, installs[0]) {
		t.Errorf("the boot files are not made from the package step")
	}
	bootFiles := g.imageFiles(bootChain)
	for p := range bootFiles.mkfiles {
		if p == release.Path || p == SpecCloudConfigPath || strings.Contains(p, "k3s") {
			t.Errorf("%s is in the boot files' inputs: changing it would make the initrd again", p)
		}
	}
	if _, ok := bootFiles.copies[agentPath]; !ok {
		t.Errorf("the agent is not in the boot files' inputs (the initrd carries it)")
	}
	if _, ok := bootFiles.copies[meshPath]; ok {
		t.Errorf("the mesh's program is in the boot files' inputs: the initrd would carry it, and changing it make the initrd again")
	}
	checkEnv(t, "finalize", finalize.Meta.Env, map[string]string{"KAIROS_INIT": f.Init})
	if want := []string{"/bin/sh", scriptsMount + "/build/finalize.sh"}; !slices.Equal(finalize.Meta.Args, want) {
		t.Errorf("finalize args %q, want %q", finalize.Meta.Args, want)
	}
	g.checkScriptsMount(t, "finalize", top, "build/finalize.sh")

	files := g.imageFiles(chain)

	// Overlay trees: the flavor's init and initrd (and k3s services for the
	// standard variant) are in, the others are not.
	want := []string{"rootfs", "init/" + f.Init, "initrd/" + f.Initrd}
	if tc.variant == "standard" {
		want = append(want, "k3s/"+f.Init)
	}
	wantPaths := map[string]bool{}
	for _, tree := range want {
		ofs, err := overlay.Tree(tree)
		if err != nil {
			t.Fatalf("overlay tree %s: %v", tree, err)
		}
		if len(ofs) == 0 {
			t.Errorf("overlay tree %s is empty", tree)
		}
		for _, of := range ofs {
			p := "/" + of.Path
			wantPaths[p] = true
			mk, ok := files.mkfiles[p]
			switch {
			case !ok:
				t.Errorf("%s (overlay %s) is not added to the image", p, tree)
			case fs.FileMode(mk.Mode) != of.Mode || !bytes.Equal(mk.Data, of.Data):
				t.Errorf("%s: mode %o and %d bytes, want overlay %s's mode %o and %d bytes", p, mk.Mode, len(mk.Data), tree, of.Mode, len(of.Data))
			}
		}
		markers, ok := overlayMarkers[tree]
		if !ok && tree != "rootfs" {
			t.Errorf("no marker files listed for overlay tree %s: add them to overlayMarkers", tree)
		}
		for p, mode := range markers {
			if mk, ok := files.mkfiles[p]; !ok || fs.FileMode(mk.Mode) != mode {
				t.Errorf("%s (%s) missing or not mode %o", p, tree, mode)
			}
		}
	}
	// Every init and initrd tree: the known ones and any a flavor names.
	others := map[string]bool{}
	for kind, names := range knownOverlayTrees {
		for _, name := range names {
			others[kind+"/"+name] = true
		}
	}
	for _, o := range cat.Flavors() {
		others["init/"+o.Init], others["initrd/"+o.Initrd], others["k3s/"+o.Init] = true, true, true
	}
	for _, tree := range sortedKeys(others) {
		if slices.Contains(want, tree) {
			continue
		}
		ofs, err := overlay.Tree(tree)
		if err != nil {
			t.Fatalf("overlay tree %s: %v", tree, err)
		}
		for _, of := range ofs {
			if p := "/" + of.Path; !wantPaths[p] && files.mkfiles[p] != nil {
				t.Errorf("%s of overlay %s is in a %s/%s %s image", p, tree, f.Init, f.Initrd, tc.variant)
			}
		}
		for p := range overlayMarkers[tree] {
			if !wantPaths[p] && files.mkfiles[p] != nil {
				t.Errorf("%s (%s) is in a %s/%s %s image", p, tree, f.Init, f.Initrd, tc.variant)
			}
		}
	}
	for p := range files.mkfiles {
		if strings.HasPrefix(p, "/build/") || strings.HasPrefix(p, "/iso/") || strings.HasPrefix(p, scriptsMount) {
			t.Errorf("build script %s is written into the image", p)
		}
	}

	// /etc/kairos-release.
	rel, ok := files.mkfiles[release.Path]
	if !ok {
		t.Fatalf("%s is not written", release.Path)
	}
	if rel.Mode != 0o644 {
		t.Errorf("%s mode %o", release.Path, rel.Mode)
	}
	kv, err := release.Parse(rel.Data)
	if err != nil {
		t.Fatal(err)
	}
	wantRel := map[string]string{
		"KAIROS_FLAVOR":                  f.Name,
		"KAIROS_FLAVOR_RELEASE":          f.Release,
		"KAIROS_FAMILY":                  f.Family,
		"KAIROS_ARCH":                    tc.arch,
		"KAIROS_TARGETARCH":              tc.arch,
		"KAIROS_VERSION":                 goldenVersion,
		"KAIROS_VARIANT":                 tc.variant,
		"KAIROS_MODEL":                   "generic",
		"KAIROS_SOFTWARE_VERSION":        "",
		"KAIROS_SOFTWARE_VERSION_PREFIX": "",
	}
	if tc.variant == "standard" {
		wantRel["KAIROS_SOFTWARE_VERSION"] = goldenK3sVersion
		wantRel["KAIROS_SOFTWARE_VERSION_PREFIX"] = "k3s"
	}
	for k, v := range wantRel {
		if got, ok := kv[k]; !ok || got != v {
			t.Errorf("%s: %s=%q (present %v), want %q", release.Path, k, got, ok, v)
		}
	}

	// Binaries from the local contexts.
	g.checkCopy(t, files, agentPath, "local://agent", "/"+AgentFile)
	g.checkCopy(t, files, meshPath, "local://agent", "/"+MeshFile)
	if tc.variant == "standard" {
		g.checkCopy(t, files, k3sPath, "local://k3s", "/"+k3sFile)
	} else if _, ok := files.copies[k3sPath]; ok {
		t.Errorf("core variant copies %s", k3sPath)
	}
}

// checkArtifactStep checks the iso target's artifact step and returns the
// image it reads.
func checkArtifactStep(t *testing.T, tc goldenCase, pm flavors.PackageManager, g *llbGraph) digest.Digest {
	d := digest.Digest(g.Out.Digest)
	op := g.Ops[d]
	run := op.GetExec()
	if run == nil {
		t.Errorf("iso result is not an exec: op #%d", g.Num[d])
		return ""
	}
	out := mountAt(run, "/out")
	if out == nil || out.Output != g.Out.Index || out.Input != -1 || out.Readonly {
		t.Errorf("iso result is not the artifact step's writable scratch /out mount: %v, result output %d", out, g.Out.Index)
	}
	name := fmt.Sprintf("kairos-%s-%s-%s-%s-generic-%s", tc.flavor.Name, tc.flavor.Release, tc.variant, tc.arch, goldenVersion)
	want := []string{"/" + ToolsFile, "artifacts", "iso", "--source", "dir:/rootfs", "--output", "/out", "--name", name, "--compression", "gzip", "--block-cache", blockCacheMount}
	if !slices.Equal(run.Meta.Args, want) {
		t.Errorf("artifact step args %q, want %q", run.Meta.Args, want)
	}
	checkEnv(t, "artifact step", run.Meta.Env, map[string]string{
		"SOURCE_DATE_EPOCH": fmt.Sprint(goldenEpoch.Unix()),
	})
	// The writer runs on the builder (amd64 here) for every target.
	if pl := op.Platform; pl == nil || pl.Architecture != "amd64" {
		t.Errorf("artifact step platform %v, want the builder's linux/amd64", pl)
	}

	rootfs := mountAt(run, "/rootfs")
	if rootfs == nil || !rootfs.Readonly || rootfs.Input < 0 {
		t.Errorf("artifact step does not mount the image read-only at /rootfs: %v", rootfs)
		return ""
	}
	image := g.Input(op, rootfs.Input)

	// The writer is the tools context's binary alone, copied (a copy's
	// cache key is its content, the context's is its session): nothing
	// is installed.
	root := mountAt(run, "/")
	if root == nil || root.Input < 0 {
		t.Errorf("artifact step has no root: %v", root)
		return image
	}
	rootOp := g.Ops[g.Input(op, root.Input)]
	cp := rootOp.GetFile()
	if cp == nil || len(cp.Actions) != 1 || cp.Actions[0].GetCopy() == nil || cp.Actions[0].Input != -1 ||
		cp.Actions[0].GetCopy().Dest != "/"+ToolsFile {
		t.Errorf("artifact step's root is not a copy of the writer onto scratch")
		return image
	}
	if id := g.Ops[g.Input(rootOp, cp.Actions[0].SecondaryInput)].GetSource().GetIdentifier(); id != "local://tools" {
		t.Errorf("the writer is copied from %q, want the tools context", id)
	}
	return image
}

// checkInstall checks one package installation step against the flavor's
// package manager: the pre-install commands, then the install command with
// exactly pkgs, then the clean command; the manager's environment; its cache
// directories as locked cache mounts, per flavor and architecture.
func checkInstall(t *testing.T, what string, f *flavors.Flavor, pm flavors.PackageManager, arch string, e *pb.ExecOp, pre, pkgs []string) {
	t.Helper()
	script, ok := shellScript(e)
	if !ok {
		t.Errorf("%s is not a shell script: %q", what, e.Meta.Args)
		return
	}
	prefix := pm.Install + " "
	if len(pre) > 0 {
		prefix = strings.Join(pre, " && ") + " && " + prefix
	}
	if !strings.HasPrefix(script, prefix) {
		t.Errorf("%s does not start with %q:\n%s", what, prefix, script)
		return
	}
	rest := strings.TrimPrefix(script, prefix)
	words, after, _ := strings.Cut(rest, " && ")
	if got := strings.Fields(words); !slices.Equal(got, pkgs) {
		t.Errorf("%s installs %q, want %q", what, got, pkgs)
	}
	if want := strings.TrimPrefix(pm.Clean+" && "+identityCleanup, " && "); pm.Clean != "" && after != want {
		t.Errorf("%s ends with %q, want the clean command and the identity cleanup %q", what, after, want)
	}
	want := map[string]string{"PATH": defaultPATH}
	for k, v := range pm.Env {
		want[k] = v
	}
	checkEnv(t, what, e.Meta.Env, want)
	var caches []string
	ids := map[string]bool{}
	for _, m := range e.Mounts {
		if m.MountType != pb.MountType_CACHE {
			continue
		}
		caches = append(caches, m.Dest)
		switch {
		case m.CacheOpt == nil:
			t.Errorf("%s: cache mount %s has no cache options", what, m.Dest)
		case m.CacheOpt.Sharing != pb.CacheSharingOpt_LOCKED:
			t.Errorf("%s: cache mount %s sharing %s, want locked", what, m.Dest, m.CacheOpt.Sharing)
		case !strings.Contains(m.CacheOpt.ID, f.ID()+"-"+arch) || ids[m.CacheOpt.ID]:
			t.Errorf("%s: cache mount %s id %q is not unique per flavor and architecture", what, m.Dest, m.CacheOpt.ID)
		}
		if m.CacheOpt != nil {
			ids[m.CacheOpt.ID] = true
		}
	}
	if !slices.Equal(caches, pm.CacheDirs) {
		t.Errorf("%s cache mounts %q, want the package manager's %q", what, caches, pm.CacheDirs)
	}
	if r := mountAt(e, "/"); r == nil || r.Readonly {
		t.Errorf("%s: root not mounted writable", what)
	}
}

// checkEnv checks that env (KEY=value entries) holds each of want exactly once.
// checkNoEnv: env does not set k.
func checkNoEnv(t *testing.T, what string, env []string, k string) {
	t.Helper()
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name == k {
			t.Errorf("%s sets %s, want it unset (no signed chain)", what, kv)
		}
	}
}

func checkEnv(t *testing.T, what string, env []string, want map[string]string) {
	t.Helper()
	for _, k := range sortedKeys(want) {
		var got []string
		for _, kv := range env {
			if name, v, _ := strings.Cut(kv, "="); name == k {
				got = append(got, v)
			}
		}
		if len(got) != 1 || got[0] != want[k] {
			t.Errorf("%s: %s=%q, want %q", what, k, got, want[k])
		}
	}
}

// checkScriptsMount checks that op mounts, read-only at scriptsMount, a
// state holding exactly the given overlay files.
func (g *llbGraph) checkScriptsMount(t *testing.T, what string, op *pb.Op, paths ...string) {
	t.Helper()
	m := mountAt(op.GetExec(), scriptsMount)
	if m == nil || !m.Readonly || m.Input < 0 {
		t.Errorf("%s does not mount its scripts read-only at %s: %v", what, scriptsMount, m)
		return
	}
	fo := g.Ops[g.Input(op, m.Input)].GetFile()
	if fo == nil {
		t.Errorf("%s scripts are not a file op", what)
		return
	}
	got := map[string]*pb.FileActionMkFile{}
	for _, a := range fo.Actions {
		if mk := a.GetMkfile(); mk != nil {
			got[strings.TrimPrefix(mk.Path, "/")] = mk
		}
	}
	for _, p := range paths {
		top, rel, _ := strings.Cut(p, "/")
		ofs, err := overlay.Tree(top)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ofs, func(f overlay.File) bool { return f.Path == rel })
		if i < 0 {
			t.Fatalf("overlay has no %s", p)
		}
		mk := got[p]
		if mk == nil || !bytes.Equal(mk.Data, ofs[i].Data) || fs.FileMode(mk.Mode) != ofs[i].Mode {
			t.Errorf("%s scripts lack overlay %s (mode %o)", what, p, ofs[i].Mode)
		}
	}
}

// checkCopy checks a copy into the image from a local context.
func (g *llbGraph) checkCopy(t *testing.T, files imageFiles, dest, source, src string) {
	t.Helper()
	c, ok := files.copies[dest]
	if !ok {
		t.Errorf("%s is not copied into the image", dest)
		return
	}
	if c.copy.Src != src || c.copy.Mode != 0o755 {
		t.Errorf("copy to %s: src %s mode %o, want %s 0755", dest, c.copy.Src, c.copy.Mode, src)
	}
	if s := g.Ops[c.from].GetSource(); s == nil || s.Identifier != source {
		t.Errorf("%s is copied from %v, want %s", dest, s, source)
	}
}

// rootChain follows an image down to its base: each exec's root mount,
// each file op's first action's input. The top op comes first.
func (g *llbGraph) rootChain(top digest.Digest) []digest.Digest {
	var chain []digest.Digest
	for d := top; d != ""; {
		chain = append(chain, d)
		op := g.Ops[d]
		next := int64(-1)
		switch o := op.Op.(type) {
		case *pb.Op_Exec:
			if m := mountAt(o.Exec, "/"); m != nil {
				next = m.Input
			}
		case *pb.Op_File:
			if len(o.File.Actions) > 0 {
				next = o.File.Actions[0].Input
			}
		}
		d = ""
		if next >= 0 && next < int64(len(op.Inputs)) {
			d = g.Input(op, next)
		}
	}
	return chain
}

// imageFiles collects the files the file ops of chain write and copy.
func (g *llbGraph) imageFiles(chain []digest.Digest) imageFiles {
	out := imageFiles{mkfiles: map[string]*pb.FileActionMkFile{}, copies: map[string]copyAction{}}
	// Bottom up, so that later writes win as in the image.
	for _, d := range slices.Backward(chain) {
		op := g.Ops[d]
		fo := op.GetFile()
		if fo == nil {
			continue
		}
		for _, a := range fo.Actions {
			if mk := a.GetMkfile(); mk != nil {
				out.mkfiles[mk.Path] = mk
			}
			if cp := a.GetCopy(); cp != nil {
				c := copyAction{copy: cp}
				if a.SecondaryInput >= 0 && a.SecondaryInput < int64(len(op.Inputs)) {
					c.from = g.Input(op, a.SecondaryInput)
				}
				out.copies[cp.Dest] = c
			}
		}
	}
	return out
}

func mountAt(e *pb.ExecOp, dest string) *pb.Mount {
	if e == nil {
		return nil
	}
	for _, m := range e.Mounts {
		if m.Dest == dest {
			return m
		}
	}
	return nil
}

// shellScript returns the script of a `/bin/sh -c <script>` exec.
func shellScript(e *pb.ExecOp) (string, bool) {
	if e == nil || len(e.Meta.Args) != 3 || e.Meta.Args[0] != "/bin/sh" || e.Meta.Args[1] != "-c" {
		return "", false
	}
	return e.Meta.Args[2], true
}
