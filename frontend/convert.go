package frontend

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/kairos-io/kairos/internal/release"
	"github.com/kairos-io/kairos/overlay"
	"github.com/moby/buildkit/client/llb"
)

// Inputs are the states a build starts from: the distro base image and a
// directory holding the kairos-agent binary.
type Inputs struct {
	Base  llb.State
	Agent llb.State
	// Epoch, when set, stamps every file the build creates (SOURCE_DATE_EPOCH).
	Epoch *time.Time
}

// Build script locations inside build containers; the overlay's build/ and
// iso/ trees are mounted there read-only and never land in the image.
const (
	scriptsMount = "/run/kairos-build"
	agentFile    = "kairos-agent"
	agentPath    = "/usr/bin/kairos-agent"
	defaultPATH  = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Graph is the LLB of one plan: the image and the artifacts made from it.
type Graph struct {
	Image llb.State
	// Artifacts is a directory holding the artifact files of the target
	// (nil state for the image target).
	Artifacts llb.State
}

// Convert turns a plan into LLB. It does no I/O: everything it needs is in
// the plan, the inputs and the embedded overlay.
func Convert(p *Plan, in Inputs) (*Graph, error) {
	var rootfs []overlay.File
	for _, tree := range p.OverlayTrees() {
		files, err := overlay.Tree(tree)
		if err != nil {
			return nil, err
		}
		rootfs = append(rootfs, files...)
	}
	// Each step mounts only the scripts it runs, so editing the ISO script
	// does not invalidate the image's cached steps.
	imageScripts, err := scriptsState(in.Epoch, "build/finalize.sh")
	if err != nil {
		return nil, err
	}
	isoScripts, err := scriptsState(in.Epoch, "build/mkiso.sh", "iso/")
	if err != nil {
		return nil, err
	}

	img := p.installPackages(in.Base, "[image] install packages", p.Packages)
	img = img.File(filesAction(rootfs, in.Epoch), llb.WithCustomName("[image] add overlay files"))
	img = img.File(llb.Copy(in.Agent, agentFile, agentPath, &llb.CopyInfo{
		Mode:           &llb.ChmodOpt{Mode: 0o755},
		CreateDestPath: true,
		CreatedTime:    in.Epoch,
	}), llb.WithCustomName("[image] add kairos-agent"))
	img = img.File(llb.Mkfile(release.Path, 0o644, p.Release.Render(), mkfileOpts(in.Epoch)...),
		llb.WithCustomName("[image] write "+release.Path))
	img = img.Run(
		llb.Args([]string{"/bin/sh", scriptsMount + "/build/finalize.sh"}),
		llb.AddEnv("PATH", defaultPATH),
		llb.AddEnv("KAIROS_INITRD", p.Flavor.Initrd),
		llb.AddEnv("KAIROS_INIT", p.Flavor.Init),
		llb.AddEnv("GRUB_MKIMAGE", p.Flavor.Grub.Mkimage),
		llb.AddEnv("GRUB_LIB", p.Flavor.Grub.Lib),
		llb.AddEnv("GRUB_EFI_PLATFORM", p.Boot.GrubEFIPlatform),
		llb.AddEnv("GRUB_EFI_NAME", p.Boot.EFIName),
		llb.AddEnv("KAIROS_BIOS", yesNo(p.Boot.BIOS)),
		llb.AddMount(scriptsMount, imageScripts, llb.Readonly),
		llb.WithCustomName("[image] initrd, boot assets, cleanup"),
	).Root()

	g := &Graph{Image: img}
	switch p.Target {
	case TargetImage:
	case TargetISO, TargetAll:
		tools := p.installPackages(img, "[iso] install media tools", p.Flavor.ISOTools)
		run := tools.Run(
			llb.Args([]string{"/bin/sh", scriptsMount + "/build/mkiso.sh", p.Release.ArtifactName(), "/out"}),
			llb.AddEnv("PATH", defaultPATH),
			llb.AddMount("/rootfs", img, llb.Readonly),
			llb.AddMount(scriptsMount, isoScripts, llb.Readonly),
			llb.WithCustomName("[iso] assemble "+p.Release.ArtifactName()+".iso"),
		)
		g.Artifacts = run.AddMount("/out", llb.Scratch())
	default:
		return nil, fmt.Errorf("target %q has no conversion", p.Target)
	}
	return g, nil
}

// installPackages runs the flavor's package manager with its caches mounted,
// so repeated builds do not download again and caches never reach the image.
func (p *Plan) installPackages(st llb.State, name string, pkgs []string) llb.State {
	pm := p.PackageManager
	script := pm.Install + " " + shellQuote(pkgs)
	if pm.Clean != "" {
		script += " && " + pm.Clean
	}
	opts := []llb.RunOption{
		llb.Args([]string{"/bin/sh", "-c", script}),
		llb.AddEnv("PATH", defaultPATH),
		llb.WithCustomName(name),
	}
	keys := make([]string, 0, len(pm.Env))
	for k := range pm.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		opts = append(opts, llb.AddEnv(k, pm.Env[k]))
	}
	for _, dir := range pm.CacheDirs {
		id := fmt.Sprintf("kairos-%s-%s%s", p.Flavor.ID(), p.Platform.Architecture, strings.ReplaceAll(dir, "/", "-"))
		opts = append(opts, llb.AddMount(dir, llb.Scratch(), llb.AsPersistentCacheDir(id, llb.CacheMountLocked)))
	}
	return st.Run(opts...).Root()
}

// scriptsState is a directory with the overlay's build/ and iso/ files whose
// paths (relative to the overlay) start with one of the given prefixes.
func scriptsState(epoch *time.Time, prefixes ...string) (llb.State, error) {
	var picked []overlay.File
	for _, top := range []string{"build", "iso"} {
		files, err := overlay.Tree(top)
		if err != nil {
			return llb.State{}, err
		}
		for _, f := range files {
			f.Path = top + "/" + f.Path
			for _, p := range prefixes {
				if strings.HasPrefix(f.Path, p) {
					picked = append(picked, f)
					break
				}
			}
		}
	}
	if len(picked) == 0 {
		return llb.State{}, fmt.Errorf("no overlay build files match %v", prefixes)
	}
	return llb.Scratch().File(filesAction(picked, epoch), llb.WithCustomName("[internal] kairos build scripts "+strings.Join(prefixes, " "))), nil
}

// filesAction creates the given files, and their parent directories, from the
// root of the state it is applied to. Existing directories are kept as they
// are; existing files are replaced.
func filesAction(files []overlay.File, epoch *time.Time) *llb.FileAction {
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted)

	mkdirOpts := []llb.MkdirOption{llb.WithParents(true)}
	if epoch != nil {
		mkdirOpts = append(mkdirOpts, llb.WithCreatedTime(*epoch))
	}
	// Methods on a nil *FileAction start a new chain.
	var fa *llb.FileAction
	for _, d := range sorted {
		fa = fa.Mkdir("/"+d, 0o755, mkdirOpts...)
	}
	for _, f := range files {
		fa = fa.Mkfile("/"+f.Path, f.Mode, f.Data, mkfileOpts(epoch)...)
	}
	return fa
}

func mkfileOpts(epoch *time.Time) []llb.MkfileOption {
	if epoch == nil {
		return nil
	}
	return []llb.MkfileOption{llb.WithCreatedTime(*epoch)}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// shellQuote joins words for /bin/sh, quoting any that need it.
func shellQuote(words []string) string {
	out := make([]string, 0, len(words))
	for _, w := range words {
		if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+:=/@") == "" {
			out = append(out, w)
			continue
		}
		out = append(out, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
	}
	return strings.Join(out, " ")
}
