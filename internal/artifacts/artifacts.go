// Package artifacts writes the boot media of a Kairos image as plain files,
// in Go, without root, mounts or loop devices: the engine behind `kairos
// artifacts` and the frontend's artifact targets. A Profile (pure data, with
// defaults) says what to write; Run executes it against a source tree.
package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/squashfs"
	"github.com/kairos-io/kairos/internal/disklayout"
	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/internal/release"
)

// Kinds of artifacts, in the order Run writes them.
const (
	KindISO      = "iso"      // <name>.iso: hybrid live ISO
	KindRecovery = "recovery" // <name>.squashfs
	KindNetboot  = "netboot"  // <name>-kernel, <name>-initrd, <name>.squashfs, <name>.ipxe
	KindRaw      = "raw"      // <name>.raw: installed-system disk (GPT)
	KindQcow2    = "qcow2"    // <name>.qcow2: the same disk as qcow2
)

// Kinds lists the kinds Run knows.
var Kinds = []string{KindISO, KindRecovery, KindNetboot, KindRaw, KindQcow2}

// Profile is what to write, as data.
type Profile struct {
	Kinds []string
	// Name is the base name of every file; empty means KAIROS_ARTIFACT
	// from the image's /etc/kairos-release.
	Name string
	// Compression of the squashfs: gzip (default, GRUB reads it), xz, zstd.
	Compression string
	// NetbootURL is the default ${base-url} of the iPXE script.
	NetbootURL string
	// CloudConfig lands at /config.yaml of the ISO, where the live system
	// reads it.
	CloudConfig []byte
	// DiskSize is the size of the raw/qcow2 disk in bytes; 0 = the
	// partitions of the contract for this image plus 2 GiB of
	// COS_PERSISTENT, rounded up to a GiB. A size that cannot hold the
	// image fails before the disk is written.
	DiskSize int64
	// Epoch stamps the file systems (SOURCE_DATE_EPOCH); zero means 0.
	Epoch time.Time
	// Progress receives one line per step and progress updates.
	Progress io.Writer
	// BlockCache is a directory of compressed squashfs blocks kept between
	// runs (squashfs.DirCache, at most BlockCacheMax bytes): a rebuild
	// after a small change compresses only the blocks that changed. The
	// files written do not depend on it. Empty: none.
	BlockCache string
}

// BlockCacheMax bounds a Profile's BlockCache: the blocks of a few images.
const BlockCacheMax = 2 << 30

// Paths inside the image the writers rely on.
const (
	kernelPath = "/boot/vmlinuz"
	initrdPath = "/boot/initrd"
	// networkInitrdPath is the initrd's network part (NIC drivers, DHCP,
	// livenet), which only a network boot needs: overlay/build/boot.sh
	// keeps it out of /boot/initrd, which every local boot reads and
	// unpacks, and the netboot initrd is the two archives in turn.
	networkInitrdPath = disklayout.BootAssets + "/initrd-network"
)

// Run writes the profile's artifacts of root into dir and returns the
// files written (each with its .sha256). A file only appears under its
// final name once complete.
func Run(ctx context.Context, root *fstree.Node, dir string, p Profile) ([]string, error) {
	if len(p.Kinds) == 0 {
		return nil, fmt.Errorf("no artifact kind given (valid: %s)", strings.Join(Kinds, ", "))
	}
	for _, k := range p.Kinds {
		if !slices.Contains(Kinds, k) {
			return nil, fmt.Errorf("unknown artifact kind %q (valid: %s)", k, strings.Join(Kinds, ", "))
		}
	}
	if root == nil || !root.Mode.IsDir() {
		return nil, errors.New("the source is not a directory tree")
	}
	name := p.Name
	if name == "" {
		rel, err := fstree.ReadFile(root, release.Path)
		if err != nil {
			return nil, fmt.Errorf("the source is not a Kairos image (%v): pass --name or build it with kairos", err)
		}
		kv, err := release.Parse(rel)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", release.Path, err)
		}
		if name = kv["KAIROS_ARTIFACT"]; name == "" {
			return nil, fmt.Errorf("%s has no KAIROS_ARTIFACT: pass --name", release.Path)
		}
		// The image is untrusted input: its name must not leave dir.
		if err := release.CheckName(name); err != nil {
			return nil, fmt.Errorf("KAIROS_ARTIFACT %q of the image's %s %w: pass --name", name, release.Path, err)
		}
	} else if err := release.CheckName(name); err != nil {
		return nil, fmt.Errorf("--name %q %w", name, err)
	}
	if p.NetbootURL != "" {
		if err := release.CheckURL(p.NetbootURL); err != nil {
			return nil, fmt.Errorf("--netboot-url %q: %w", p.NetbootURL, err)
		}
	}
	if err := checkWritable(dir); err != nil {
		return nil, err
	}
	w := &run{ctx: ctx, root: root, dir: dir, name: name, p: p}
	defer func() {
		for _, t := range w.temps {
			os.Remove(t)
		}
	}()
	for _, k := range p.Kinds {
		var err error
		switch k {
		case KindISO:
			err = w.iso()
		case KindRecovery:
			err = w.squashfs()
		case KindNetboot:
			err = w.netboot()
		case KindRaw:
			err = w.raw()
		case KindQcow2:
			err = w.qcow2()
		}
		if err != nil {
			return w.files, fmt.Errorf("%s: %w", k, err)
		}
	}
	return w.files, nil
}

type run struct {
	ctx   context.Context
	root  *fstree.Node
	dir   string
	name  string
	p     Profile
	files []string
	// temps are removed when Run returns; tmpSquashfs is the ISO's root
	// file system when no squashfs artifact was asked for.
	temps       []string
	tmpSquashfs string
	// rawPath is the raw disk artifact once written (qcow2 converts it).
	rawPath string
}

func (w *run) say(format string, args ...any) {
	if w.p.Progress != nil {
		fmt.Fprintf(w.p.Progress, "kairos-artifacts: "+format+"\n", args...)
	}
}

// squashfs writes <name>.squashfs once per run.
func (w *run) squashfs() error {
	final := filepath.Join(w.dir, w.name+".squashfs")
	if slices.Contains(w.files, final) {
		return nil
	}
	return w.write(final, w.writeSquashfs)
}

// BootBlockSize is the block size of the gzip squashfs the media boot
// from (gzip is the default; mksquashfs' default size). A boot reads its
// files a page at a time, and the kernel decompresses the whole block (or
// fragment block) holding each page: with 1 MiB blocks the live ISO's
// boot read 90 MB of squashfs and spent 1.5 s more CPU in systemd alone
// than with 128 KiB blocks (40 MB), for 0.5% less size.
const BootBlockSize = 128 << 10

// blockSize is the squashfs block size for a compression: xz and zstd,
// which a build picks for size, keep 1 MiB blocks (at 128 KiB our zstd
// is 6% larger than libzstd's, at 1 MiB 1%).
func blockSize(compression string) int {
	if compression == "" || compression == squashfs.DefaultCompression {
		return BootBlockSize
	}
	return squashfs.DefaultBlockSize
}

// writeSquashfs writes the root file system to path, with progress.
func (w *run) writeSquashfs(path string) error {
	start := time.Now()
	w.say("squashfs (%s) of the root file system", orDefault(w.p.Compression, squashfs.DefaultCompression))
	opt := squashfs.Options{Compression: w.p.Compression, BlockSize: blockSize(w.p.Compression), ModTime: w.p.Epoch, Progress: w.progress("squashfs")}
	var cache squashfs.DirCache
	if w.p.BlockCache != "" {
		cache = squashfs.DirCache{Dir: w.p.BlockCache}
		opt.BlockCache = cache
	}
	st, err := squashfs.WriteFile(path, w.root, opt)
	if err != nil {
		return err
	}
	cached := ""
	if w.p.BlockCache != "" {
		cached = fmt.Sprintf(", %d of %d blocks from the block cache", st.CachedBlocks, st.DataBlocks+st.FragmentBlocks)
		if err := cache.Prune(BlockCacheMax); err != nil {
			w.say("squashfs: pruning the block cache: %v", err)
		}
	}
	w.say("squashfs: %d MiB in %s (%d duplicate files%s)", st.ImageSize>>20, time.Since(start).Round(time.Second), st.DuplicateFiles, cached)
	return nil
}

// progress reports a long step's done/total bytes every few seconds.
func (w *run) progress(what string) func(done, total int64) {
	last := time.Now()
	return func(done, total int64) {
		if time.Since(last) > 5*time.Second && total > 0 {
			last = time.Now()
			w.say("%s: %d%% (%d of %d MiB)", what, done*100/total, done>>20, total>>20)
		}
	}
}

func (w *run) netboot() error {
	if err := w.squashfs(); err != nil {
		return err
	}
	for _, f := range []struct{ src, suffix string }{{kernelPath, "-kernel"}, {initrdPath, "-initrd"}} {
		data, err := fstree.ReadFile(w.root, f.src)
		if err != nil {
			return fmt.Errorf("the image has no %s: %w", f.src, err)
		}
		if f.src == initrdPath {
			if data, err = NetbootInitrd(w.root, data); err != nil {
				return err
			}
		}
		if err := w.write(filepath.Join(w.dir, w.name+f.suffix), func(partial string) error {
			return os.WriteFile(partial, data, 0o644)
		}); err != nil {
			return err
		}
	}
	script := IPXEScript(w.name, w.p.NetbootURL, SerialConsole(w.arch()))
	return w.write(filepath.Join(w.dir, w.name+".ipxe"), func(partial string) error {
		return os.WriteFile(partial, []byte(script), 0o644)
	})
}

// NetbootInitrd is the initrd a network boot loads: the image's initrd
// followed by its network part when it has one (dracut images; mkinitfs
// keeps one initrd), at a 4-byte boundary as the kernel reads a
// concatenation of archives, each unpacked over the ones before.
func NetbootInitrd(root *fstree.Node, initrd []byte) ([]byte, error) {
	network, err := fstree.ReadFile(root, networkInitrdPath)
	if errors.Is(err, fs.ErrNotExist) {
		return initrd, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the image's %s: %w", networkInitrdPath, err)
	}
	out := make([]byte, 0, len(initrd)+3+len(network))
	out = append(out, initrd...)
	for len(out)%4 != 0 {
		out = append(out, 0)
	}
	return append(out, network...), nil
}

// arch is the image's architecture from its kairos-release ("" when it
// says none).
func (w *run) arch() string {
	data, err := fstree.ReadFile(w.root, release.Path)
	if err != nil {
		return ""
	}
	kv, err := release.Parse(data)
	if err != nil {
		return ""
	}
	if a := kv["KAIROS_TARGETARCH"]; a != "" {
		return a
	}
	return kv["KAIROS_ARCH"]
}

// SerialConsole is the first serial port's device on an architecture: the
// 16550 UART of PCs, the PL011 of arm64 machines (SBSA servers, QEMU virt).
// The grub menus pick the same by $grub_cpu.
func SerialConsole(arch string) string {
	if arch == "arm64" {
		return "ttyAMA0"
	}
	return "ttyS0"
}

// IPXEScript is the netboot script of the contract. iPXE expands
// ${base-url} at boot, so one script serves any HTTP server; defaultURL
// only sets its default; console is the serial console (SerialConsole).
func IPXEScript(name, defaultURL, console string) string {
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	if defaultURL != "" {
		fmt.Fprintf(&b, "isset ${base-url} || set base-url %s\n", defaultURL)
	} else {
		b.WriteString("isset ${base-url} || goto no_url\n")
	}
	fmt.Fprintf(&b, "kernel ${base-url}/%[1]s-kernel root=live:${base-url}/%[1]s.squashfs initrd=%[1]s-initrd rd.neednet=1 ip=dhcp rd.cos.disable rd.luks=0 netboot install-mode rd.live.overlay.overlayfs console=%[2]s\n", name, console)
	fmt.Fprintf(&b, "initrd ${base-url}/%s-initrd\n", name)
	b.WriteString("boot\n")
	if defaultURL == "" {
		b.WriteString(":no_url\n")
		b.WriteString("echo Set base-url to the HTTP directory holding the netboot files, e.g. \"set base-url http://10.0.2.2:8080\", then chain this script again.\n")
		b.WriteString("shell\n")
	}
	return b.String()
}

// write produces final through a ".partial" file, then adds its checksum.
func (w *run) write(final string, produce func(partial string) error) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	partial := final + ".partial"
	if err := produce(partial); err != nil {
		os.Remove(partial)
		return err
	}
	if err := os.Rename(partial, final); err != nil {
		os.Remove(partial)
		return err
	}
	sum, err := checksum(final)
	if err != nil {
		return err
	}
	w.files = append(w.files, final, sum)
	w.say("wrote %s", filepath.Base(final))
	return nil
}

// checksum writes <file>.sha256 in sha256sum's format.
func checksum(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	out := file + ".sha256"
	line := hex.EncodeToString(h.Sum(nil)) + "  " + filepath.Base(file) + "\n"
	return out, os.WriteFile(out, []byte(line), 0o644)
}

func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".kairos-write-test-")
	if err != nil {
		return fmt.Errorf("output directory %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
