package frontend

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/kairos-io/kairos/internal/release"
	"github.com/kairos-io/kairos/overlay"
	"github.com/moby/buildkit/client/llb"
	digest "github.com/opencontainers/go-digest"
)

// Inputs are the states a build starts from: the distro base image and a
// directory holding the node's programs (AgentFile, MeshFile).
type Inputs struct {
	Base  llb.State
	Agent llb.State
	// AgentDir is the directory of Agent holding AgentFile and MeshFile
	// ("" = root).
	AgentDir string
	// K3s is a directory holding the "k3s" binary; required when the plan
	// has K3s (see K3sDownload).
	K3s *llb.State
	// Tools is the root file system holding the artifact writer at
	// ToolsPath (a static kairos-frontend, run as "kairos-frontend
	// artifacts"), on the builder's platform; required by artifact targets.
	Tools     *llb.State
	ToolsPath string
	// Overlay, when set, is a tree copied over the image root after
	// Kairos' own files, so users can replace any of them.
	Overlay *llb.State
	// OverlayDir is the directory of Overlay to copy ("" = root).
	OverlayDir string
	// Epoch, when set, stamps every file the build creates (SOURCE_DATE_EPOCH).
	Epoch *time.Time
}

// The agent context's files, static binaries for the target platform: the
// node agent (every image and initrd) and the cluster mesh's program
// (cmd/kairos-p2p; the image only: no boot needs it).
const (
	AgentFile = "kairos-agent"
	MeshFile  = "kairos-p2p"
)

// Build script locations inside build containers; the overlay's build/ and
// iso/ trees are mounted there read-only and never land in the image.
const (
	scriptsMount = "/run/kairos-build"
	// blockCacheMount holds the artifact writer's squashfs block cache.
	blockCacheMount = "/var/cache/kairos-blocks"
	blockCacheID    = "kairos-squashfs-blocks"
	// bootOutMount receives boot.sh's files, laid out as in the image.
	bootOutMount = "/run/kairos-boot"
	agentPath    = "/usr/bin/" + AgentFile
	meshPath     = "/usr/bin/" + MeshFile
	k3sFile      = "k3s"
	k3sSumsFile  = "sha256sums.txt"
	k3sPath      = "/usr/bin/k3s"
	// SpecCloudConfigPath is where the spec's cloud_config is baked; the
	// 10_ defaults in the same directory run before it.
	SpecCloudConfigPath = "/system/oem/50_spec.yaml"
	defaultPATH         = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
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
	overlayFiles := func(trees []string) ([]overlay.File, error) {
		var out []overlay.File
		for _, tree := range trees {
			files, err := overlay.Tree(tree)
			if err != nil {
				return nil, err
			}
			out = append(out, files...)
		}
		return out, nil
	}
	rootfs, err := overlayFiles(p.OverlayTrees())
	if err != nil {
		return nil, err
	}
	bootFiles, err := overlayFiles(p.BootOverlayTrees())
	if err != nil {
		return nil, err
	}
	// Each step mounts only the scripts it runs, so editing the ISO script
	// does not invalidate the image's cached steps.
	imageScripts, err := scriptsState(in.Epoch, "build/finalize.sh")
	if err != nil {
		return nil, err
	}
	bootScripts, err := scriptsState(in.Epoch, "build/boot.sh")
	if err != nil {
		return nil, err
	}

	// Slow, rarely changing steps first: editing the overlay or the agent
	// must not re-run package installation.
	pkgs := p.installPackages(in.Base, "[image] install packages", p.Packages, p.Flavor.PreInstall...)
	if len(p.RemovePackages) > 0 {
		pkgs = p.removePackages(pkgs, p.RemovePackages)
	}
	addProgram := func(st llb.State, file, dest, name string) llb.State {
		return st.File(llb.Copy(in.Agent, path.Join("/", in.AgentDir, file), dest, &llb.CopyInfo{
			Mode:           &llb.ChmodOpt{Mode: 0o755},
			CreateDestPath: true,
			CreatedTime:    in.Epoch,
		}), llb.WithCustomName(name))
	}
	addAgent := func(st llb.State, name string) llb.State {
		return addProgram(st, AgentFile, agentPath, name)
	}

	// The kernel's boot files (initrd, grub images) are made on a branch
	// of the packages holding only what goes into them: Kairos' own files
	// and the agent. The user's overlay, cloud-config and the version are
	// not there, so changing them reuses the initrd from the cache; the
	// core and standard variants share it.
	boot := addAgent(pkgs.File(filesAction(bootFiles, in.Epoch), llb.WithCustomName("[boot] add Kairos files")), "[boot] add kairos-agent")
	bootOut := boot.Run(
		llb.Args([]string{"/bin/sh", scriptsMount + "/build/boot.sh"}),
		llb.AddEnv("PATH", defaultPATH),
		llb.AddEnv("KAIROS_INITRD", p.Flavor.Initrd),
		llb.AddEnv("KAIROS_INITRD_MODULES", strings.Join(p.Flavor.InitrdModules, " ")),
		llb.AddEnv("GRUB_MKIMAGE", p.Flavor.Grub.Mkimage),
		llb.AddEnv("GRUB_LIB", p.Flavor.Grub.Lib),
		llb.AddEnv("GRUB_EFI_PLATFORM", p.Boot.GrubEFIPlatform),
		llb.AddEnv("GRUB_EFI_NAME", p.Boot.EFIName),
		llb.AddEnv("KAIROS_BIOS", yesNo(p.Boot.BIOS)),
		llb.With(secureBootEnv(p)),
		llb.AddEnv("KAIROS_BOOT_OUT", bootOutMount),
		llb.AddMount(scriptsMount, bootScripts, llb.Readonly),
		epochEnv(in.Epoch),
		llb.WithCustomName("[boot] kernel, initrd, boot assets"),
	).AddMount(bootOutMount, llb.Scratch())

	img := pkgs
	if p.K3s != nil {
		if in.K3s == nil {
			return nil, fmt.Errorf("the standard variant needs k3s %s: no k3s input given", p.K3s.Version)
		}
		img = img.File(llb.Copy(*in.K3s, k3sFile, k3sPath, &llb.CopyInfo{
			Mode:           &llb.ChmodOpt{Mode: 0o755},
			CreateDestPath: true,
			CreatedTime:    in.Epoch,
		}), llb.WithCustomName("[image] add k3s "+p.K3s.Version))
	}
	img = img.File(filesAction(rootfs, in.Epoch), llb.WithCustomName("[image] add overlay files"))
	if in.Overlay != nil {
		img = img.File(llb.Copy(*in.Overlay, path.Join("/", in.OverlayDir)+"/", "/", &llb.CopyInfo{
			CopyDirContentsOnly: true,
			CreatedTime:         in.Epoch,
		}), llb.WithCustomName("[image] add user overlay"))
	}
	if len(p.CloudConfig) > 0 {
		img = img.File(llb.Mkfile(SpecCloudConfigPath, 0o600, p.CloudConfig, mkfileOpts(in.Epoch)...),
			llb.WithCustomName("[image] write "+SpecCloudConfigPath))
	}
	img = addAgent(img, "[image] add kairos-agent")
	img = addProgram(img, MeshFile, meshPath, "[image] add kairos-p2p")
	img = img.File(llb.Mkfile(release.Path, 0o644, p.Release.Render(), mkfileOpts(in.Epoch)...),
		llb.WithCustomName("[image] write "+release.Path))
	img = img.Run(
		llb.Args([]string{"/bin/sh", scriptsMount + "/build/finalize.sh"}),
		llb.AddEnv("PATH", defaultPATH),
		llb.AddEnv("KAIROS_INIT", p.Flavor.Init),
		llb.AddMount(scriptsMount, imageScripts, llb.Readonly),
		epochEnv(in.Epoch),
		llb.WithCustomName("[image] services, users, cleanup"),
	).Root()
	img = img.File(llb.Copy(bootOut, "/", "/", &llb.CopyInfo{
		CopyDirContentsOnly: true,
		CreatedTime:         in.Epoch,
	}), llb.WithCustomName("[image] add kernel, initrd, boot assets"))

	g := &Graph{Image: img}
	if a := p.Artifacts; a != nil {
		if in.Tools == nil {
			return nil, fmt.Errorf("target %q needs the artifact writer: no tools input given", p.Target)
		}
		// The writer is the frontend binary itself (pure Go, static): it
		// runs on the builder's platform with the image mounted read-only,
		// so nothing is installed into or run inside the image.
		// The writer runs from a copy: a file step's cache key is the
		// content it copies, while a build context's is its session, so
		// an exec rooted on the context itself would run again on every
		// build and never match a registry cache.
		// It runs on the builder's platform, whatever the target's.
		builder, err := in.Tools.GetPlatform(context.TODO())
		if err != nil {
			return nil, err
		}
		writer := llb.Scratch()
		if builder != nil {
			writer = writer.Platform(*builder)
		}
		writer = writer.File(llb.Copy(*in.Tools, path.Join("/", in.ToolsPath), "/"+ToolsFile, &llb.CopyInfo{
			CreatedTime: in.Epoch,
		}), llb.WithCustomName("[artifacts] writer"))
		args := append([]string{"/" + ToolsFile, "artifacts"}, a.Kinds...)
		args = append(args, "--source", "dir:/rootfs", "--output", "/out", "--name", a.Name,
			"--compression", a.SquashfsCompression, "--block-cache", blockCacheMount)
		if a.NetbootURL != "" {
			args = append(args, "--netboot-url", a.NetbootURL)
		}
		if a.DiskSize != 0 {
			args = append(args, "--disk-size", fmt.Sprint(a.DiskSize))
		}
		run := writer.Run(
			llb.Args(args),
			llb.AddMount("/rootfs", img, llb.Readonly),
			// Temporary files go to a disk-backed scratch mount, never to
			// the output (and not to RAM: a squashfs can be gigabytes).
			llb.AddMount("/tmp", llb.Scratch()),
			// Compressed squashfs blocks of earlier builds on this builder:
			// a rebuild after a small change compresses only what changed.
			// The files written do not depend on it (each block is checked
			// against its content), so it is no part of the step's key.
			llb.AddMount(blockCacheMount, llb.Scratch(), llb.AsPersistentCacheDir(blockCacheID, llb.CacheMountShared)),
			epochEnv(in.Epoch),
			llb.WithCustomName(fmt.Sprintf("[artifacts] %s: %s", a.Name, strings.Join(a.Kinds, ", "))),
		)
		g.Artifacts = run.AddMount("/out", llb.Scratch())
	} else if p.Target != TargetImage {
		return nil, fmt.Errorf("target %q has no conversion", p.Target)
	}
	return g, nil
}

// K3sDownload is the k3s input fetched from the upstream release, pinned to
// the digest read from the release's sha256 file, so a tampered or
// truncated download fails the build.
func K3sDownload(k *K3sPlan, digest digest.Digest) llb.State {
	return llb.HTTP(k.BinaryURL,
		llb.Checksum(digest),
		llb.Filename(k3sFile),
		llb.Chmod(0o755),
		llb.WithCustomName("[k3s] download "+k.BinaryURL))
}

// K3sSums is the release's sha256 file, fetched to learn the binary's digest.
func K3sSums(k *K3sPlan) llb.State {
	return llb.HTTP(k.SumsURL, llb.Filename(k3sSumsFile), llb.WithCustomName("[k3s] download "+k.SumsURL))
}

// ParseK3sSums finds the binary's digest in a sha256sum-format file.
func ParseK3sSums(k *K3sPlan, data []byte) (digest.Digest, error) {
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 2 && strings.TrimPrefix(fields[1], "*") == k.BinaryName {
			d := digest.NewDigestFromEncoded(digest.SHA256, fields[0])
			if err := d.Validate(); err != nil {
				return "", fmt.Errorf("%s: bad checksum for %s: %w", k.SumsURL, k.BinaryName, err)
			}
			return d, nil
		}
	}
	return "", fmt.Errorf("%s lists no checksum for %s", k.SumsURL, k.BinaryName)
}

// removePackages removes packages the user does not want, after the
// install step so that dependencies pulled in there go too.
func (p *Plan) removePackages(st llb.State, pkgs []string) llb.State {
	return st.Run(
		llb.Args([]string{"/bin/sh", "-c", p.PackageManager.Remove + " " + shellQuote(pkgs)}),
		llb.AddEnv("PATH", defaultPATH),
		llb.WithCustomName("[image] remove packages "+strings.Join(pkgs, " ")),
	).Root()
}

// identityCleanup removes what package scripts generate per machine: SSH
// host keys (private keys must never sit in a published layer), machine
// ids, ldconfig's cache of inode numbers; and per day: the accounts they
// create record the day of their last password change in /etc/shadow,
// which is emptied (shadow(5): aging disabled; finalize.sh does the same
// for the live user). It runs in the install step itself because a later
// change would leave them in the lower layer, and they would make every
// build (or every day's) differ.
const identityCleanup = "rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub /var/lib/dbus/machine-id /var/cache/ldconfig/aux-cache" +
	" && if [ -e /etc/machine-id ]; then : > /etc/machine-id; fi" +
	` && for f in /etc/shadow /etc/shadow-; do if [ -f "$f" ]; then sed -i 's/^\([^:]*:[^:]*:\)[0-9]*:/\1:/' "$f"; fi; done`

// installPackages runs the flavor's package manager with its caches mounted,
// so repeated builds do not download again and caches never reach the image.
// preInstall commands (the flavor's repository setup) run first, in the
// same step.
func (p *Plan) installPackages(st llb.State, name string, pkgs []string, preInstall ...string) llb.State {
	pm := p.PackageManager
	script := pm.Install + " " + shellQuote(pkgs)
	if len(preInstall) > 0 {
		script = strings.Join(preInstall, " && ") + " && " + script
	}
	if pm.Clean != "" {
		script += " && " + pm.Clean
	}
	script += " && " + identityCleanup
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

// epochEnv passes SOURCE_DATE_EPOCH to the steps whose tools stamp their
// output (dracut, mksquashfs, xorriso). Package installation does not get
// it: its file times are clamped at export (rewrite-timestamp), and a
// changing epoch must not invalidate the slowest step.
func epochEnv(epoch *time.Time) llb.RunOption {
	if epoch == nil {
		return noRunOption{}
	}
	return llb.AddEnv("SOURCE_DATE_EPOCH", fmt.Sprint(epoch.Unix()))
}

type noRunOption struct{}

func (noRunOption) SetRunOption(*llb.ExecInfo) {}

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

// secureBootEnv tells boot.sh where the signed chain's binaries are and
// which names shim loads them by; nothing when the build makes its GRUB.
func secureBootEnv(p *Plan) llb.StateOption {
	return func(st llb.State) llb.State {
		c := p.SecureBoot
		if c == nil {
			return st
		}
		for _, kv := range [][2]string{
			{"KAIROS_SHIM", c.Shim}, {"KAIROS_SIGNED_GRUB", c.Grub}, {"KAIROS_MOK_MANAGER", c.MokManager},
			{"KAIROS_GRUB_PREFIX", c.GrubPrefix}, {"SHIM_GRUB_NAME", p.Boot.ShimGrub}, {"SHIM_MOK_NAME", p.Boot.ShimMokManager},
		} {
			st = st.AddEnv(kv[0], kv[1])
		}
		return st
	}
}
