package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/agent/crypt"
	"github.com/kairos-io/kairos/internal/agent/deploy"
	"github.com/kairos-io/kairos/internal/diskfmt/ext4"
	"github.com/kairos-io/kairos/internal/disklayout"
	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/internal/rootfs"
)

// Install stages of the contract, run around the disk work.
const (
	StageBefore      = "before-install"
	StageAfterChroot = "after-install-chroot"
	StageAfter       = "after-install"
)

// Stages runs the install stages.
type Stages = deploy.Stages

// Installer holds what an install needs from the machine.
type Installer struct {
	Devices blockdev.Devices // blockdev.Of(host.System) on a node
	// Out gets the progress lines.
	Out io.Writer
	// Stages runs the install stages; nil runs none.
	Stages Stages
	// LiveRoot is the live system's read-only root file system, the
	// default source (dracut's dmsquash-live mounts it there).
	LiveRoot string
	// WorkDir is where the new disk's file systems are mounted.
	WorkDir string
	// Tmp holds what a registry or archive source is spooled to.
	Tmp string
	// LockFile serialises install, upgrade and reset; empty means
	// host.System.LockFile.
	LockFile string
	// Crypt encrypts the partitions Options.Encrypt names; nil uses the
	// machine's TPM and tools.
	Crypt *crypt.Tools
}

func (in *Installer) crypt() *crypt.Tools {
	if in.Crypt == nil {
		return &crypt.Tools{}
	}
	return in.Crypt
}

// Plan is a checked install: everything is known, nothing is written.
type Plan struct {
	Options
	Disk      blockdev.Disk
	Layout    *disklayout.Layout
	Boot      *disklayout.Boot
	Files     []disklayout.File
	ImageSize int64
	// Release is the image's /etc/kairos-release.
	Release map[string]string
	tree    *rootfs.Tree
	unlock  func() error
	// opened are the labels of the encrypted partitions open while the
	// disk is written.
	opened []string
}

// Close releases the source (spool files of a registry image) and the
// agent's lock.
func (p *Plan) Close() error {
	err := p.tree.Close()
	if p.unlock != nil {
		err = errors.Join(err, p.unlock())
		p.unlock = nil
	}
	return err
}

// Plan opens the source, sizes the images, picks and checks the disk. A
// disk that is too small, in use or the boot medium is refused here, with
// the sizes in the message. The plan holds the agent's lock (deploy.Lock)
// from here to Close, so that no upgrade or other install runs between
// checking the disk and writing it.
func (in *Installer) Plan(ctx context.Context, o Options) (*Plan, error) {
	ref, err := in.sourceRef(o.Source)
	if err != nil {
		return nil, err
	}
	unlock, err := deploy.Lock(in.LockFile)
	if err != nil {
		return nil, err
	}
	in.say("source: %s", ref)
	tree, err := rootfs.OpenWith(ctx, ref, rootfs.Options{Tmp: in.Tmp, Insecure: o.AllowInsecure})
	if err != nil {
		unlock()
		return nil, err
	}
	p := &Plan{Options: o, tree: tree, unlock: unlock}
	fail := func(err error) (*Plan, error) {
		p.Close()
		return nil, err
	}
	if p.Release, err = deploy.CheckImage(tree.Root); err != nil {
		return fail(fmt.Errorf("source %s: %w", ref, err))
	}
	read := func(path string) ([]byte, error) { return fstree.ReadFile(tree.Root, path) }
	if p.Boot, err = disklayout.ReadBoot(read); err != nil {
		return fail(fmt.Errorf("source %s: %w", ref, err))
	}
	if p.Files, err = p.Boot.Files(o.GrubEnv, o.Config); err != nil {
		return fail(fmt.Errorf("install.grub_options: %w", err))
	}
	if slices.Contains(o.Encrypt, disklayout.LabelOEM) {
		disklayout.MoveEnvToState(p.Files)
	}
	rootfs, err := ext4.RequiredSize(tree.Root, ext4.Options{Label: disklayout.LabelActive})
	if err != nil {
		return fail(fmt.Errorf("sizing the image: %w", err))
	}
	p.ImageSize = disklayout.ImageSize(rootfs)
	// The smallest disk the layout fits, to pick one with "auto".
	need, err := disklayout.MinDiskSize(disklayout.Input{ImageSize: p.ImageSize, Sizes: o.Partitions, BIOS: p.Boot.BIOS != nil})
	if err != nil {
		return fail(err)
	}
	if len(o.Encrypt) > 0 {
		// Before anything is written: a node asked to encrypt that cannot
		// keeps its disk as it was.
		if err := in.crypt().CheckTPM(); err != nil {
			return fail(fmt.Errorf("install.encrypted_partitions asks to encrypt %s: %w; the key would have nowhere to be sealed, so nothing was written", strings.Join(o.Encrypt, ", "), err))
		}
		if in.Crypt == nil {
			if err := crypt.CheckTools(); err != nil {
				return fail(fmt.Errorf("install.encrypted_partitions: %w", err))
			}
		}
	}
	if p.Disk, err = in.Devices.Resolve(o.Device, need); err != nil {
		return fail(err)
	}
	if used, err := in.Devices.InUse(p.Disk); err != nil {
		return fail(err)
	} else if used != "" {
		return fail(fmt.Errorf("%s is in use (mounted at %s): it is the boot medium or holds mounted file systems; choose another disk", p.Disk.Path, used))
	}
	p.Layout, err = disklayout.Plan(disklayout.Input{ImageSize: p.ImageSize, DiskSize: p.Disk.Size, Sizes: o.Partitions, BIOS: p.Boot.BIOS != nil})
	if err != nil {
		return fail(fmt.Errorf("%s: %w", p.Disk.Path, err))
	}
	if p.Boot.BIOS != nil {
		p.Layout.Table.BootCode = p.Boot.BIOS.PatchedBoot(p.Layout.Part(disklayout.PartBIOS).Start)
	}
	return p, nil
}

// sourceRef is the source to open: the live root by default.
func (in *Installer) sourceRef(s string) (string, error) {
	if s == "" {
		if st, err := os.Stat(in.LiveRoot); err == nil && st.IsDir() {
			return "dir:" + in.LiveRoot, nil
		}
		return "", fmt.Errorf("not running from live media (no %s): give the image with --source %s", in.LiveRoot, strings.Join(rootfs.AgentKinds, "|"))
	}
	return rootfs.FromAgent(s)
}

func (in *Installer) say(format string, args ...any) {
	if in.Out != nil {
		fmt.Fprintf(in.Out, "kairos-agent install: "+format+"\n", args...)
	}
}

// Run installs the plan. On failure the error says which step failed;
// what was mounted is unmounted.
func (in *Installer) Run(ctx context.Context, p *Plan) (err error) {
	start := time.Now()
	var log bytes.Buffer
	out := in.Out
	// The log is written first and whatever happens to the console.
	in.Out = io.MultiWriter(&log, bestEffort{orDiscard(out)})
	defer func() { in.Out = out }()
	in.say("installing %s %s to %s (%d MiB): %s", p.Release["KAIROS_NAME"], p.Release["KAIROS_VERSION"], p.Disk.Path, p.Disk.Size>>20, p.Layout)

	if err := in.stage(ctx, StageBefore, "/"); err != nil {
		return err
	}
	if err := in.writeDisk(p); err != nil {
		return errors.Join(fmt.Errorf("writing %s: %w", p.Disk.Path, err), in.closeEncrypted(p))
	}
	mounts := &deploy.Mounts{}
	defer func() {
		if uerr := mounts.UnmountAll(); uerr != nil && err == nil {
			err = uerr
		}
		if cerr := in.closeEncrypted(p); cerr != nil && err == nil {
			err = cerr
		}
	}()
	dirs := map[string]string{}
	for _, name := range []string{disklayout.PartOEM, disklayout.PartState, disklayout.PartRecovery} {
		dev, err := in.partitionDev(p, name)
		if err != nil {
			return err
		}
		dirs[name] = filepath.Join(in.WorkDir, name)
		if err := mounts.Mount(dev, dirs[name], "ext4", ""); err != nil {
			return err
		}
	}
	// From here the log is left on COS_OEM, success or failure.
	saveLog := func() error {
		return os.WriteFile(filepath.Join(dirs[disklayout.PartOEM], "install.log"), log.Bytes(), 0o600)
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(&log, "kairos-agent install: failed: %v\n", err)
			saveLog()
		}
	}()
	if err := in.writeImages(ctx, p, dirs, mounts); err != nil {
		return err
	}
	if err := in.writeBootFiles(p, dirs); err != nil {
		return err
	}
	in.say("%s written in %s", p.Disk.Path, time.Since(start).Round(time.Second))
	if err := saveLog(); err != nil {
		return err
	}
	if err := mounts.UnmountAll(); err != nil {
		return err
	}
	unix.Sync()
	if err := in.stage(ctx, StageAfter, "/"); err != nil {
		return err
	}
	in.say("done in %s", time.Since(start).Round(time.Second))
	return nil
}

// bestEffort ignores the errors of w (a console that went away).
type bestEffort struct{ w io.Writer }

func (b bestEffort) Write(p []byte) (int, error) {
	b.w.Write(p)
	return len(p), nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func (in *Installer) stage(ctx context.Context, stage, root string) error {
	if in.Stages == nil || !in.Stages.Has(stage) {
		return nil
	}
	in.say("stage %s", stage)
	if err := in.Stages.Run(ctx, stage, root); err != nil {
		return fmt.Errorf("stage %s: %w", stage, err)
	}
	return nil
}

// writeDisk writes what lives outside file systems through the whole
// disk (GPT, MBR boot code, ESP, GRUB core), then makes the kernel read
// the new table and creates the ext4 file systems.
func (in *Installer) writeDisk(p *Plan) error {
	f, err := os.OpenFile(p.Disk.Path, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("opening the disk (is it in use?): %w", err)
	}
	defer f.Close()
	in.say("partition table (GPT, %d partitions)", len(p.Layout.Parts))
	if err := p.Layout.Table.Write(f, p.Layout.DiskSize); err != nil {
		return err
	}
	part := p.Layout.Part(disklayout.PartEFI)
	// The ESP is built whole in memory: the disk's old content must not
	// show through the FAT's unwritten sectors.
	img := &memDisk{buf: make([]byte, part.Size)}
	if err := disklayout.WriteESP(img, part, p.Files, time.Now()); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	in.say("%s: UEFI loader %s", disklayout.LabelGrub, p.Boot.Loader())
	if _, err := f.WriteAt(img.buf, part.Start); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	if p.Boot.BIOS != nil {
		bios := p.Layout.Part(disklayout.PartBIOS)
		in.say("bios_grub: GRUB core image (%d bytes) and MBR boot code", len(p.Boot.BIOS.Core))
		if _, err := f.WriteAt(p.Boot.BIOS.PatchedCore(bios.Start), bios.Start); err != nil {
			return fmt.Errorf("GRUB core image: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	// The kernel reads the new table; udev makes the nodes.
	if err := announcePartitions(in.Devices, f, p.Disk, p.Layout.Parts); err != nil {
		return err
	}
	f.Close()
	if _, err := exec.LookPath("udevadm"); err == nil {
		exec.Command("udevadm", "settle", "--timeout=10").Run()
	}
	for i, part := range p.Layout.Parts {
		if part.Name == disklayout.PartEFI || part.Name == disklayout.PartBIOS {
			continue
		}
		dev, err := in.Devices.PartitionPath(p.Disk, i+1, 10*time.Second)
		if err != nil {
			return err
		}
		if slices.Contains(p.Encrypt, part.Label) {
			in.say("%s: LUKS2 on %s (%d MiB), key sealed to the TPM (PCR %s)", part.Label, dev, part.Size>>20, crypt.PCRs)
			opts := crypt.Options{Recovery: p.RecoveryPassphrase}
			if dev, err = in.crypt().Format(context.Background(), dev, part.Label, opts); err != nil {
				return fmt.Errorf("%s: %w", part.Label, err)
			}
			p.opened = append(p.opened, part.Label)
			if len(opts.Recovery) > 0 {
				in.say("%s: recovery passphrase added", part.Label)
			}
		}
		in.say("%s: ext4 on %s (%d MiB)", part.Label, dev, part.Size>>20)
		if err := deploy.Run("mkfs.ext4", "-F", "-q", "-L", part.Label, dev); err != nil {
			return fmt.Errorf("%s: %w", part.Label, err)
		}
	}
	return nil
}

// partitionDev is the device of a partition's file system: the opened
// container of an encrypted one.
func (in *Installer) partitionDev(p *Plan, name string) (string, error) {
	part := p.Layout.Part(name)
	if slices.Contains(p.opened, part.Label) {
		return filepath.Join("/dev/mapper", crypt.MapperName(part.Label)), nil
	}
	return in.Devices.PartitionPath(p.Disk, p.Layout.Index(name), 10*time.Second)
}

// closeEncrypted closes what writeDisk opened.
func (in *Installer) closeEncrypted(p *Plan) error {
	var errs []error
	for _, label := range p.opened {
		if err := in.crypt().Close(context.Background(), label); err != nil {
			errs = append(errs, err)
		}
	}
	p.opened = nil
	return errors.Join(errs...)
}

// writeImages writes active.img from the source, runs the chroot stage in
// it, and copies it to passive.img and recovery.img with their labels.
func (in *Installer) writeImages(ctx context.Context, p *Plan, dirs map[string]string, mounts *deploy.Mounts) error {
	imgPath := func(img disklayout.Image) string {
		return filepath.Join(dirs[img.Part], disklayout.ImageDir, img.File)
	}
	for _, part := range []string{disklayout.PartState, disklayout.PartRecovery} {
		if err := os.MkdirAll(filepath.Join(dirs[part], disklayout.ImageDir), 0o755); err != nil {
			return err
		}
	}
	active := imgPath(disklayout.Active)
	in.say("%s (%s, %d MiB ext4)", disklayout.Active.File, disklayout.Active.Label, p.ImageSize>>20)
	st, err := deploy.WriteImage(active, p.tree.Root, disklayout.Active.Label, p.ImageSize, deploy.Progress(in.say, disklayout.Active.File))
	if err != nil {
		return fmt.Errorf("%s: %w", disklayout.Active.File, err)
	}
	in.say("%s: %d files, %d MiB free", disklayout.Active.File, st.Files, int64(st.FreeBlocks)*int64(st.BlockSize)>>20)
	if in.Stages != nil && in.Stages.Has(StageAfterChroot) {
		root := filepath.Join(in.WorkDir, "active")
		if err := mounts.Mount(active, root, "ext4", "loop"); err != nil {
			return err
		}
		for _, d := range []string{"/dev", "/proc", "/sys", "/run"} {
			if err := mounts.Mount(d, filepath.Join(root, d), "", "bind"); err != nil {
				return err
			}
		}
		if err := in.stage(ctx, StageAfterChroot, root); err != nil {
			return err
		}
		if err := mounts.UnmountBelow(root); err != nil {
			return err
		}
	}
	for _, img := range []disklayout.Image{disklayout.Passive, disklayout.Recovery} {
		in.say("%s (%s): copy of %s", img.File, img.Label, disklayout.Active.File)
		if err := deploy.CopySparse(imgPath(img), active); err != nil {
			return fmt.Errorf("%s: %w", img.File, err)
		}
		if err := deploy.Relabel(imgPath(img), img.Label); err != nil {
			return fmt.Errorf("%s: %w", img.File, err)
		}
	}
	return nil
}

// writeBootFiles writes the layout's files on the mounted ext4
// partitions (the ESP's are in its FAT, written with the table).
func (in *Installer) writeBootFiles(p *Plan, dirs map[string]string) error {
	for _, f := range p.Files {
		if f.Part == disklayout.PartEFI {
			continue
		}
		path := filepath.Join(dirs[f.Part], filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, f.Data, f.Mode); err != nil {
			return err
		}
	}
	in.say("grub menu, grub environments and %s written", disklayout.CustomConfig)
	return nil
}

// memDisk is an in-memory WriterAt of fixed size.
type memDisk struct{ buf []byte }

func (d *memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(d.buf)) {
		return 0, fmt.Errorf("write of %d bytes at %d beyond %d", len(p), off, len(d.buf))
	}
	return copy(d.buf[off:], p), nil
}

// announcePartitions makes the kernel know the new table: BLKRRPART, and
// where the kernel does not parse it (kernels without GPT support, some
// loop devices) each partition added with BLKPG as partx(8) does.
func announcePartitions(h blockdev.Devices, f *os.File, d blockdev.Disk, parts []disklayout.Part) error {
	if err := blockdev.Reread(f); err != nil {
		return err
	}
	if _, err := h.PartitionPath(d, 1, 2*time.Second); err == nil {
		return nil
	}
	for i, p := range parts {
		if err := blockdev.AddPartition(f, blockdev.Extent{Number: i + 1, Start: p.Start, Size: p.Size}); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return nil
}
