package mount

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kairos-io/kairos/internal/agent/state"
)

// Installed-system layout of the contract.
const (
	// OverlayDir is the tmpfs behind the ephemeral paths.
	OverlayDir = "/run/overlay"
	// StateBindDir is where COS_PERSISTENT keeps the persistent paths.
	StateBindDir = "/usr/local/.state"

	defaultOEMLabel  = "COS_OEM"
	persistentLabel  = "COS_PERSISTENT"
	stateLabel       = "COS_STATE"
	recoveryLabel    = "COS_RECOVERY"
	imageCmdlineKey  = "cos-img/filename="
	oemLabelCmdline  = "rd.cos.oemlabel="
	overlaySizeRatio = "25%"
)

// EphemeralPaths get a tmpfs-backed overlay: writable, gone at reboot.
var EphemeralPaths = []string{"/etc", "/var", "/srv"}

// PersistentPaths are bind-mounted from COS_PERSISTENT: they survive
// reboots and upgrades. Upstream's default list (11_persistency.yaml), and
// what the agent and Kubernetes keep besides; a path the image lacks and
// the read-only root cannot get is skipped.
var PersistentPaths = []string{
	"/etc/ssh", "/etc/rancher", "/etc/sysconfig", "/etc/systemd", "/etc/kubernetes", "/etc/cni",
	"/etc/iscsi", "/etc/modprobe.d", "/etc/runlevels", "/etc/ssl/certs", "/home", "/opt", "/root",
	"/snap", "/usr/libexec", "/usr/share/pki/trust", "/usr/share/pki/trust/anchors",
	"/var/log", "/var/snap", "/var/lib/rancher", "/var/lib/kubelet", "/var/lib/containerd",
	"/var/lib/cni", "/var/lib/etcd", "/var/lib/longhorn", "/var/lib/kairos", "/var/lib/dbus",
	"/var/lib/snapd", "/var/lib/wicked", "/var/lib/ca-certificates", "/var/lib/extensions",
}

// BootImage is what the kernel command line says to boot: the image file
// and the partition holding it.
type BootImage struct {
	Mode      state.BootMode
	Image     string // /cOS/active.img
	Partition string // file system label: COS_STATE or COS_RECOVERY
	OEMLabel  string
}

// ParseBootImage reads the installed-system boot from the command line.
func ParseBootImage(cmdline string) (BootImage, error) {
	b := BootImage{Mode: state.DetectBootMode(cmdline), OEMLabel: defaultOEMLabel}
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, imageCmdlineKey); ok {
			b.Image = v
		}
		if v, ok := strings.CutPrefix(f, oemLabelCmdline); ok && v != "" {
			b.OEMLabel = v
		}
	}
	switch b.Mode {
	case state.ActiveBoot, state.PassiveBoot:
		b.Partition = stateLabel
	case state.RecoveryBoot:
		b.Partition = recoveryLabel
	default:
		return b, fmt.Errorf("not an installed-system boot (%s): %q", b.Mode, cmdline)
	}
	if b.Image == "" || !strings.HasPrefix(b.Image, "/") || strings.Contains(b.Image, "..") {
		return b, fmt.Errorf("%s boot needs %s<absolute path of the image on %s>, got %q", b.Mode, imageCmdlineKey, b.Partition, b.Image)
	}
	return b, nil
}

// Step is one action of a plan: a mount, or a directory to create.
type Step struct {
	// Mount: Source on Target with FSType and Options ("bind" for binds).
	Source, Target, FSType, Options string
	// Label names the device by file system label instead of Source.
	Label string
	// Optional steps are skipped, with a warning, when the device or
	// target is missing (e.g. a disk without COS_PERSISTENT).
	Optional bool
	// SeedFrom copies this directory into Source when Source is created
	// (first boot of a persistent path keeps the image's content).
	SeedFrom string
	// Mkdir lists directories to create first.
	Mkdir []string
}

func (s Step) String() string {
	src := s.Source
	if s.Label != "" {
		src = "LABEL=" + s.Label
	}
	return fmt.Sprintf("%s on %s (%s %s)", src, s.Target, s.FSType, s.Options)
}

// SysrootPlan is the contract's mount order after the root image is
// mounted read-only at sysroot: COS_OEM at /oem, the tmpfs overlays, a
// tmpfs at /tmp, COS_PERSISTENT at /usr/local, the persistent bind paths; l adds paths
// and sets the overlay's size. Sysroot mounts OEM first and runs the
// rootfs stage, which may write the layout, before the rest.
func SysrootPlan(b BootImage, sysroot string, l Layout) []Step {
	in := func(p string) string { return filepath.Join(sysroot, p) }
	size := overlaySizeRatio
	if l.OverlaySize != "" {
		size = l.OverlaySize
	}
	steps := []Step{
		{Label: b.OEMLabel, Target: in("/oem"), FSType: "ext4", Options: "rw,noatime", Optional: true},
		{Source: "tmpfs", Target: OverlayDir, FSType: "tmpfs", Options: "mode=0755,size=" + size, Mkdir: []string{OverlayDir}},
	}
	for _, p := range union(EphemeralPaths, l.EphemeralPaths) {
		name := strings.Trim(strings.ReplaceAll(p, "/", "-"), "-")
		upper, work := filepath.Join(OverlayDir, name, "upper"), filepath.Join(OverlayDir, name, "work")
		steps = append(steps, Step{
			Source: "overlay", Target: in(p), FSType: "overlay",
			Options: fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", in(p), upper, work),
			Mkdir:   []string{upper, work}, Optional: true,
		})
	}
	// /tmp on the read-only root would be read-only: every program that
	// writes a temporary file would fail. A tmpfs, as systemd's tmp.mount
	// makes it (which not every distro enables).
	steps = append(steps, Step{Source: "tmpfs", Target: in("/tmp"), FSType: "tmpfs", Options: "mode=1777,strictatime,nosuid,nodev,size=50%,nr_inodes=1m", Optional: true})
	steps = append(steps, Step{Label: persistentLabel, Target: in("/usr/local"), FSType: "ext4", Options: "rw,noatime", Optional: true})
	for _, p := range union(PersistentPaths, l.PersistentPaths) {
		src := in(filepath.Join(StateBindDir, strings.Trim(strings.ReplaceAll(p, "/", "-"), "-")+".bind"))
		steps = append(steps, Step{Source: src, Target: in(p), FSType: "none", Options: "bind", SeedFrom: in(p), Optional: true})
	}
	return steps
}

// Fstab is the /etc/fstab of the booted system: what the mounter mounted,
// so that systemd and users see the layout (systemd leaves mounted file
// systems as they are).
func Fstab(b BootImage) string {
	var s strings.Builder
	s.WriteString("# Written at boot by kairos-agent mount: the Kairos immutable layout.\n")
	fmt.Fprintf(&s, "LABEL=%s\t/oem\text4\trw,noatime,nofail\t0 0\n", b.OEMLabel)
	fmt.Fprintf(&s, "LABEL=%s\t/usr/local\text4\trw,noatime,nofail\t0 0\n", persistentLabel)
	return s.String()
}

// union is a followed by what b adds.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, p := range b {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
