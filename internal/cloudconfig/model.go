package cloudconfig

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/p2p/token"
)

// Config is one cloud-config document, as upstream Kairos and its stage
// language (yip) define the keys. Every key here is read by something on
// the node; keys outside it are reported as warnings, not refused.
type Config struct {
	// Name names the document's steps for `after` (default: the file).
	Name     string `yaml:"name"`
	Hostname string `yaml:"hostname"`
	Users    Users  `yaml:"users"`
	Stages   Stages `yaml:"stages"`

	Install Install    `yaml:"install"`
	Reset   Reset      `yaml:"reset"`
	Upgrade Upgrade    `yaml:"upgrade"`
	K3s     Kubernetes `yaml:"k3s"`
	K3sAgnt Kubernetes `yaml:"k3s-agent"`
	P2P     P2P        `yaml:"p2p"`

	Bundles             []Bundle `yaml:"bundles"`
	FailOnBundlesErrors bool     `yaml:"fail_on_bundles_errors"`
	// ConfigURL names a config the datasource command fetches at boot and
	// merges after this one (chains followed, loops refused).
	ConfigURL   string            `yaml:"config_url"`
	Options     map[string]any    `yaml:"options" unsupported:""`
	Env         []string          `yaml:"env"`
	GrubOptions map[string]string `yaml:"grub_options"`
	Debug       bool              `yaml:"debug"`
	// Strict makes a failing stage step fail the stage run (run-stage's
	// --strict), instead of being logged while the other steps go on.
	Strict         bool     `yaml:"strict"`
	CloudInitPaths []string `yaml:"cloud-init-paths"`

	// cloud-init's keys, run in the boot stage as one step (CloudInitStep).
	WriteFiles        []WriteFile `yaml:"write_files"`
	RunCmd            Commands    `yaml:"runcmd"`
	BootCmd           Commands    `yaml:"bootcmd"`
	SSHAuthorizedKeys []string    `yaml:"ssh_authorized_keys"`
	Growpart          *Growpart   `yaml:"growpart"`
}

// Stages maps a stage name (boot, fs.after, kairos-install.pre,
// provider-kairos.bootstrap.after.k3s-ready, ...) to its steps. Any name
// is valid: it runs when something fires it.
type Stages map[string][]Step

// Step is one entry of a stage. Conditions first, then its parts in the
// order of the fields.
type Step struct {
	Name string `yaml:"name"`
	// Growpart are the devices of cloud-init's growpart (CloudInitStep),
	// grown first.
	Growpart []string `yaml:"-"`

	If                 string  `yaml:"if"`
	IfFiles            IfFiles `yaml:"if_files"`
	OnlyOS             string  `yaml:"only_os"`
	OnlyOSVersion      string  `yaml:"only_os_version"`
	OnlyArch           string  `yaml:"only_arch"`
	OnlyServiceManager string  `yaml:"only_service_manager"`
	Node               string  `yaml:"node"`
	After              []After `yaml:"after"`

	DNS              DNS               `yaml:"dns"`
	Downloads        []Download        `yaml:"downloads"`
	EnsureEntities   []Entity          `yaml:"ensure_entities"`
	Directories      []Directory       `yaml:"directories"`
	Files            []File            `yaml:"files"`
	Commands         []string          `yaml:"commands"`
	DeleteEntities   []Entity          `yaml:"delete_entities"`
	Hostname         string            `yaml:"hostname"`
	Sysctl           map[string]string `yaml:"sysctl"`
	Users            Users             `yaml:"users"`
	AuthorizedKeys   map[string]Keys   `yaml:"authorized_keys"`
	Modules          []string          `yaml:"modules"`
	Timesyncd        map[string]string `yaml:"timesyncd"`
	Systemctl        Systemctl         `yaml:"systemctl"`
	Environment      map[string]string `yaml:"environment"`
	EnvironmentFile  string            `yaml:"environment_file"`
	SystemdFirstboot map[string]string `yaml:"systemd_firstboot"`
	Datasource       Datasource        `yaml:"datasource"`
	Layout           Layout            `yaml:"layout"`
	Git              any               `yaml:"git" unsupported:""`
	Packages         any               `yaml:"packages" unsupported:""`
	UnpackImages     any               `yaml:"unpack_images" unsupported:""`
}

func (s *Step) decodeYAML(d *decoder, n *yaml.Node, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	type plain Step
	d.decode(n, reflectOf((*plain)(s)), path)
	for _, c := range []struct{ key, re string }{{"node", s.Node}, {"only_os", s.OnlyOS}, {"only_os_version", s.OnlyOSVersion}, {"only_arch", s.OnlyArch}} {
		if _, err := regexp.Compile(c.re); err != nil {
			d.errorf(child(n, c.key), "%s: not a regular expression: %v", join(path, c.key), err)
		}
	}
	for k := range s.Sysctl {
		if k == "" || strings.Contains(k, "/") || slices.Contains(strings.Split(k, "."), "") {
			d.errorf(child(n, "sysctl"), "%s: %q is not a sysctl key (dotted, like net.ipv4.ip_forward)", join(path, "sysctl"), k)
		}
	}
	for i, o := range s.Systemctl.Overrides {
		for _, v := range []string{o.Service, o.Name} {
			if strings.Contains(v, "/") || v == ".." || v == "." {
				d.errorf(n, "%s.systemctl.overrides[%d]: %q is not a unit or drop-in name", name(path), i, v)
			}
		}
		if o.Service == "" {
			d.errorf(n, "%s.systemctl.overrides[%d]: service is required", name(path), i)
		}
	}
	for i, dl := range s.Downloads {
		if !strings.HasPrefix(dl.URL, "https://") && !strings.HasPrefix(dl.URL, "http://") {
			d.errorf(n, "%s.downloads[%d]: url %q is not http(s)", name(path), i, dl.URL)
		}
		if !strings.HasPrefix(dl.Path, "/") {
			d.errorf(n, "%s.downloads[%d]: path %q is not absolute", name(path), i, dl.Path)
		}
	}
	for i, dir := range s.Directories {
		if !strings.HasPrefix(dir.Path, "/") {
			d.errorf(n, "%s.directories[%d]: path %q is not absolute", name(path), i, dir.Path)
		}
	}
	for u := range s.AuthorizedKeys {
		if err := CheckUserName(u); err != nil {
			d.errorf(child(n, "authorized_keys"), "%s: %v", join(path, "authorized_keys"), err)
		}
	}
	for i, a := range s.After {
		if a.Name == "" || a.Name == "~" {
			d.errorf(child(n, "after"), "%s.after[%d]: a step name is required", name(path), i)
		}
	}
	checkEnv(d, child(n, "environment"), join(path, "environment"), s.Environment)
	checkHostname(d, n, path, s.Hostname)
}

// After names a step this one waits for: "<config name>.<step name>".
type After struct {
	Name string `yaml:"name"`
}

func (a *After) decodeYAML(d *decoder, n *yaml.Node, path string) {
	if n.Kind == yaml.ScalarNode { // after: [other-step]
		a.Name = n.Value
		return
	}
	type plain After
	d.decode(n, reflectOf((*plain)(a)), path)
}

// IfFiles runs a step only when files exist: any of them, all of them, or
// none of them.
type IfFiles struct {
	Any  []string `yaml:"any"`
	All  []string `yaml:"all"`
	None []string `yaml:"none"`
}

// Directory is created with its parents.
type Directory struct {
	Path        string `yaml:"path"`
	Permissions uint32 `yaml:"permissions"`
	Owner       int    `yaml:"owner"`
	Group       int    `yaml:"group"`
}

// File is written whole. Content is decoded per Encoding first.
type File struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Encoding    string `yaml:"encoding"`
	Permissions uint32 `yaml:"permissions"`
	Owner       int    `yaml:"owner"`
	Group       int    `yaml:"group"`
	// OwnerString is "user" or "user:group", resolved against the
	// target's accounts; it wins over Owner and Group.
	OwnerString string `yaml:"owner_string"`
}

// Encodings are the values File.Encoding and WriteFile.Encoding take.
var Encodings = []string{"", "b64", "base64", "gz", "gzip", "gz+base64", "gzip+base64", "gz+b64", "gzip+b64"}

func checkEncoding(d *decoder, n *yaml.Node, enc string) {
	if !slices.Contains(Encodings, enc) {
		d.errorf(child(n, "encoding"), "encoding %q is not one of %s", enc, strings.Join(Encodings[1:], ", "))
	}
}

func (f *File) decodeYAML(d *decoder, n *yaml.Node, path string) {
	type plain File
	d.decode(n, reflectOf((*plain)(f)), path)
	checkFile(d, n, path, f.Path, f.Encoding)
}

func checkFile(d *decoder, n *yaml.Node, path, p, enc string) {
	if p == "" {
		d.errorf(n, "%s: a file needs a path", name(path))
	} else if !strings.HasPrefix(p, "/") {
		d.errorf(child(n, "path"), "%s: file path %q is not absolute", join(path, "path"), p)
	}
	checkEncoding(d, n, enc)
}

// Download fetches a URL to a file.
type Download struct {
	Path        string `yaml:"path"`
	URL         string `yaml:"url"`
	Permissions uint32 `yaml:"permissions"`
	Owner       int    `yaml:"owner"`
	Group       int    `yaml:"group"`
	OwnerString string `yaml:"owner_string"`
	// Timeout is in seconds; 0 means the default.
	Timeout int `yaml:"timeout"`
}

// Entity is an account entity (a passwd, group, shadow or gshadow line)
// given as a YAML document in the entities format: `kind: user`,
// `username: ...`. Path is the file (the kind's /etc file by default).
type Entity struct {
	Path   string `yaml:"path"`
	Entity string `yaml:"entity"`
}

func (e *Entity) decodeYAML(d *decoder, n *yaml.Node, path string) {
	type plain Entity
	d.decode(n, reflectOf((*plain)(e)), path)
	if e.Path != "" && !strings.HasPrefix(e.Path, "/") {
		d.errorf(child(n, "path"), "%s: path %q is not absolute", join(path, "path"), e.Path)
	}
	if _, err := e.Parse(); err != nil {
		at := child(n, "entity")
		if at == nil {
			at = n
		}
		d.errorf(at, "%s: %v", join(path, "entity"), err)
	}
}

// DNS is written to resolv.conf.
type DNS struct {
	Nameservers []string `yaml:"nameservers"`
	Search      []string `yaml:"search"`
	Options     []string `yaml:"options"`
	// Path is where; /etc/resolv.conf by default.
	Path string `yaml:"path"`
}

// Systemctl lists unit operations and drop-in overrides.
type Systemctl struct {
	Enable    []string   `yaml:"enable"`
	Disable   []string   `yaml:"disable"`
	Start     []string   `yaml:"start"`
	Mask      []string   `yaml:"mask"`
	Overrides []Override `yaml:"overrides"`
}

// Override is a drop-in for a unit:
// /etc/systemd/system/<service>.service.d/<name>.conf.
type Override struct {
	Service string `yaml:"service"`
	Name    string `yaml:"name"`
	Content string `yaml:"content"`
}

// Datasource fetches user data from the first of Providers that has any
// into Path/userdata.yaml.
type Datasource struct {
	Providers []string `yaml:"providers"`
	Path      string   `yaml:"path"`
}

// IsZero says whether the step has no datasource.
func (ds Datasource) IsZero() bool { return len(ds.Providers) == 0 && ds.Path == "" }

func (ds *Datasource) decodeYAML(d *decoder, n *yaml.Node, path string) {
	type plain Datasource
	d.decode(n, reflectOf((*plain)(ds)), path)
	if ds.IsZero() {
		return
	}
	if !strings.HasPrefix(ds.Path, "/") {
		d.errorf(n, "%s: path %q is not absolute (where the user data goes, e.g. /oem)", name(path), ds.Path)
	}
	known := DatasourceProviders()
	for _, p := range ds.Providers {
		if !slices.Contains(known, p) {
			// Upstream's lists name providers this agent does not have
			// (vmware, file): the rest still work.
			d.warnf(n, "%s: provider %q is not known to this agent and is skipped (known: %s)", name(path), p, strings.Join(known, ", "))
		}
	}
}

// Layout changes the partitions of a disk: grow the last one, add more.
type Layout struct {
	Device        *LayoutDevice  `yaml:"device"`
	Expand        *Expand        `yaml:"expand_partition"`
	AddPartitions []AddPartition `yaml:"add_partitions"`
}

// LayoutDevice is the disk, by a file system or partition label (first)
// or a path.
type LayoutDevice struct {
	Label string `yaml:"label"`
	Path  string `yaml:"path"`
}

// IsZero says whether the step has no layout.
func (l Layout) IsZero() bool { return l.Device == nil && l.Expand == nil && len(l.AddPartitions) == 0 }

func (l *Layout) decodeYAML(d *decoder, n *yaml.Node, path string) {
	type plain Layout
	d.decode(n, reflectOf((*plain)(l)), path)
	if !l.IsZero() && (l.Device == nil || (l.Device.Label == "" && l.Device.Path == "")) {
		d.errorf(n, "%s: device needs a label or a path (the disk to change)", name(path))
	}
	for i, a := range l.AddPartitions {
		if a.FSLabel == "" {
			d.errorf(n, "%s[%d]: fsLabel is needed (how a later boot knows the partition is there)", join(path, "add_partitions"), i)
		}
	}
}

// Expand grows the last partition to Size MiB; 0 is all the free space.
type Expand struct {
	Size uint64 `yaml:"size"`
}

// AddPartition is a partition to create (skipped when its label exists).
type AddPartition struct {
	FSLabel    string `yaml:"fsLabel"`
	Size       uint64 `yaml:"size"`
	PLabel     string `yaml:"pLabel"`
	FileSystem string `yaml:"filesystem"`
	Bootable   bool   `yaml:"bootable"`
}

// User is an account a cloud-config asks for. Passwd is a crypt(3) hash
// ("$6$..."), or a plain password that is hashed before it is stored.
type User struct {
	Name              string   `yaml:"name"`
	Passwd            string   `yaml:"passwd"`
	LockPasswd        bool     `yaml:"lock_passwd" alias:"lockPasswd,lock-passwd"`
	Groups            []string `yaml:"groups"`
	PrimaryGroup      string   `yaml:"primary_group" alias:"primary-group"`
	NoUserGroup       bool     `yaml:"no_user_group" alias:"no-user-group"`
	SSHAuthorizedKeys Keys     `yaml:"ssh_authorized_keys"`
	Gecos             string   `yaml:"gecos"`
	Homedir           string   `yaml:"homedir"`
	NoCreateHome      bool     `yaml:"no_create_home" alias:"no-create-home"`
	Shell             string   `yaml:"shell"`
	System            bool     `yaml:"system"`
	NoLogInit         bool     `yaml:"no_log_init" alias:"no-log-init"`
	UID               string   `yaml:"uid"`
	GID               string   `yaml:"gid"`
}

// Keys are SSH public keys, or where to fetch them: github:<user>,
// gitlab:<user>, or an https:// URL.
type Keys []string

// Users is a list of users: the top level gives a list of users with names
// (cloud-init's shape), a step a mapping of name to user (yip's); either
// is read in both places. A mapping is sorted by name.
type Users []User

func (u *Users) decodeYAML(d *decoder, n *yaml.Node, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case isNull(n):
	case n.Kind == yaml.MappingNode:
		var m map[string]User
		d.decode(n, reflectOf(&m), path)
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			usr := m[k]
			if usr.Name == "" {
				usr.Name = k
			}
			*u = append(*u, usr)
		}
	default:
		var l []User
		d.decode(n, reflectOf(&l), path)
		*u = append(*u, l...)
	}
	for _, usr := range *u {
		if err := checkUser(usr); err != nil {
			d.errorf(n, "%s: %v", name(path), err)
		}
	}
}

// checkUser refuses what the account files cannot hold or the node could
// not carry out, so that validate says it rather than the boot.
func checkUser(u User) error {
	if err := CheckUserName(u.Name); err != nil {
		return err
	}
	for _, g := range append(slices.Clone(u.Groups), u.PrimaryGroup) {
		if g == u.PrimaryGroup && g == "" {
			continue
		}
		if err := CheckUserName(g); err != nil {
			return fmt.Errorf("user %s: group %w", u.Name, err)
		}
	}
	for field, v := range map[string]string{"gecos": u.Gecos, "homedir": u.Homedir, "shell": u.Shell} {
		if strings.ContainsAny(v, ":\n") {
			return fmt.Errorf("user %s: %s %q holds ':' or a line break", u.Name, field, v)
		}
	}
	if u.Homedir != "" && !strings.HasPrefix(u.Homedir, "/") {
		return fmt.Errorf("user %s: homedir %q is not absolute", u.Name, u.Homedir)
	}
	for field, v := range map[string]string{"uid": u.UID, "gid": u.GID} {
		if v != "" && !numeric.MatchString(v) {
			return fmt.Errorf("user %s: %s %q is not a number", u.Name, field, v)
		}
	}
	return nil
}

var (
	numeric  = regexp.MustCompile(`^[0-9]+$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$`)
)

// checkEnv refuses variables a shell or an EnvironmentFile would read
// otherwise than written.
func checkEnv(d *decoder, n *yaml.Node, path string, env map[string]string) {
	for k, v := range env {
		if !envName.MatchString(k) {
			d.errorf(n, "%s: %q is not a variable name", name(path), k)
		}
		if strings.ContainsAny(v, "\n\x00") {
			d.errorf(n, "%s.%s: the value holds a line break", name(path), k)
		}
	}
}

func checkHostname(d *decoder, n *yaml.Node, path, h string) {
	if h != "" && !hostname.MatchString(h) {
		d.errorf(child(n, "hostname"), "%s: %q is not a host name (letters, digits, '-' and '.')", join(path, "hostname"), h)
	}
}

// CheckUserName refuses names no account file can hold.
func CheckUserName(n string) error {
	if n == "" || strings.ContainsAny(n, ":\n/ ,") || n == "." || n == ".." {
		return fmt.Errorf("%q is not a valid user name", n)
	}
	return nil
}

// WriteFile is cloud-init's write_files entry.
type WriteFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Encoding    string `yaml:"encoding"`
	Permissions uint32 `yaml:"permissions"`
	// Owner is "user" or "user:group".
	Owner string `yaml:"owner"`
}

func (f *WriteFile) decodeYAML(d *decoder, n *yaml.Node, path string) {
	type plain WriteFile
	d.decode(n, reflectOf((*plain)(f)), path)
	checkFile(d, n, path, f.Path, f.Encoding)
}

// Commands are cloud-init's runcmd and bootcmd: each item a shell line,
// or a list of arguments (run without a shell's word splitting: each is
// quoted).
type Commands []string

// safeWord is an argument the shell reads as itself.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9_./:=@%+,-]+$`)

func (c *Commands) decodeYAML(d *decoder, n *yaml.Node, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	for i, it := range items {
		for it.Kind == yaml.AliasNode {
			it = it.Alias
		}
		p := fmt.Sprintf("%s[%d]", path, i)
		switch it.Kind {
		case yaml.ScalarNode:
			if !isNull(it) {
				*c = append(*c, it.Value)
			}
		case yaml.SequenceNode:
			var argv []string
			d.decode(it, reflectOf(&argv), p)
			for j, a := range argv {
				if a == "" || !safeWord.MatchString(a) {
					argv[j] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
				}
			}
			*c = append(*c, strings.Join(argv, " "))
		default:
			d.errorf(it, "%s: want a command line or a list of arguments, got %s", p, describe(it))
		}
	}
}

// Growpart is cloud-init's growpart: the partition holding each device
// (a mount point or a partition) grows into the free space after it, with
// its file system. Mode off (or false) turns it off; devices default to
// "/", which on Kairos is the read-only image: nothing to grow there.
type Growpart struct {
	Mode    string   `yaml:"mode"`
	Devices []string `yaml:"devices"`
}

// Off says whether growpart is turned off.
func (g *Growpart) Off() bool { return g == nil || g.Mode == "off" || g.Mode == "false" }

// GrowDevices are the devices to grow ("/" when none are given).
func (g *Growpart) GrowDevices() []string {
	if g.Off() {
		return nil
	}
	if len(g.Devices) == 0 {
		return []string{"/"}
	}
	return g.Devices
}

func (g *Growpart) decodeYAML(d *decoder, n *yaml.Node, path string) {
	type plain Growpart
	d.decode(n, reflectOf((*plain)(g)), path)
	if !slices.Contains([]string{"", "auto", "growpart", "off", "false"}, g.Mode) {
		d.errorf(child(n, "mode"), "%s: mode %q is not one of auto, growpart, off", join(path, "mode"), g.Mode)
	}
	for _, dev := range g.Devices {
		if !strings.HasPrefix(dev, "/") {
			d.errorf(n, "%s: device %q is not a path (a mount point or /dev/...)", join(path, "devices"), dev)
		}
	}
}

// CloudInitStep is the step cloud-init's keys make, run first in the boot
// stage of every boot, as upstream: write_files, then bootcmd and runcmd,
// the hostname, and ssh_authorized_keys given to every user of the file
// (root when it has none). Nil when the file has none of them.
func (c *Config) CloudInitStep() *Step {
	if len(c.WriteFiles)+len(c.BootCmd)+len(c.RunCmd)+len(c.SSHAuthorizedKeys) == 0 && c.Hostname == "" && c.Growpart.Off() {
		return nil
	}
	s := &Step{Name: "cloud-init", Hostname: c.Hostname, Commands: append(slices.Clone(c.BootCmd), c.RunCmd...), Growpart: c.Growpart.GrowDevices()}
	for _, w := range c.WriteFiles {
		s.Files = append(s.Files, File{Path: w.Path, Content: w.Content, Encoding: w.Encoding, Permissions: w.Permissions, OwnerString: w.Owner})
	}
	if len(c.SSHAuthorizedKeys) > 0 {
		s.AuthorizedKeys = map[string]Keys{}
		users := []string{"root"}
		if len(c.Users) > 0 {
			users = nil
			for _, u := range c.Users {
				users = append(users, u.Name)
			}
		}
		for _, u := range users {
			s.AuthorizedKeys[u] = Keys(c.SSHAuthorizedKeys)
		}
	}
	return s
}

// Partition is one of the contract's partitions at install.
type Partition struct {
	Size  string `yaml:"size"`
	FS    string `yaml:"fs" unsupported:"the contract's file systems are used"`
	Label string `yaml:"label" unsupported:"the contract's labels are used"`
}

// Install is `install:`.
type Install struct {
	Auto            bool                 `yaml:"auto"`
	Device          string               `yaml:"device"`
	Reboot          bool                 `yaml:"reboot"`
	Poweroff        bool                 `yaml:"poweroff"`
	Source          string               `yaml:"source"`
	Image           string               `yaml:"image" unsupported:"install.source is read"`
	NoFormat        bool                 `yaml:"no_format" alias:"no-format" unsupported:""`
	Force           bool                 `yaml:"force" unsupported:""`
	Firmware        string               `yaml:"firmware" unsupported:"a disk boots under both"`
	PartTable       string               `yaml:"part-table" alias:"part_table" unsupported:"the contract's table is GPT"`
	GrubEntryName   string               `yaml:"grub-entry-name" alias:"grub_entry_name" unsupported:""`
	Partitions      map[string]Partition `yaml:"partitions"`
	GrubOptions     map[string]string    `yaml:"grub_options"`
	BindMounts      []string             `yaml:"bind_mounts"`
	EphemeralMounts []string             `yaml:"ephemeral_mounts"`
	Bundles         []Bundle             `yaml:"bundles"`
	Env             []string             `yaml:"env" unsupported:""`
	// EncryptedParts are the partitions, by label (COS_PERSISTENT,
	// COS_OEM), made LUKS2 with their key sealed to the TPM.
	EncryptedParts []string   `yaml:"encrypted_partitions"`
	Encryption     Encryption `yaml:"encryption"`
}

// Encryption is `install.encryption:`, how encrypted_partitions are
// opened besides the TPM.
type Encryption struct {
	// RecoveryPassphrase opens every encrypted partition without the TPM
	// (cryptsetup open). A secret: never printed.
	RecoveryPassphrase string `yaml:"recovery_passphrase"`
}

// EncryptableLabels are what install.encrypted_partitions may name.
var EncryptableLabels = []string{"COS_PERSISTENT", "COS_OEM"}

func (i *Install) decodeYAML(d *decoder, n *yaml.Node, path string) {
	type plain Install
	d.decode(n, reflectOf((*plain)(i)), path)
	if i.Reboot && i.Poweroff {
		d.errorf(child(n, "poweroff"), "%s: reboot and poweroff are both set: choose one", name(path))
	}
	for _, l := range []struct {
		key   string
		paths []string
	}{{"bind_mounts", i.BindMounts}, {"ephemeral_mounts", i.EphemeralMounts}} {
		for _, p := range l.paths {
			if clean := filepath.Clean(p); !filepath.IsAbs(p) || clean == "/" || clean != strings.TrimSuffix(p, "/") {
				d.errorf(child(n, l.key), "%s: %q is not an absolute, clean path", join(path, l.key), p)
			}
		}
	}
	seen := map[string]bool{}
	for _, l := range i.EncryptedParts {
		switch {
		case !slices.Contains(EncryptableLabels, l):
			d.errorf(child(n, "encrypted_partitions"), "%s: %q cannot be encrypted (one of %s: COS_STATE, COS_RECOVERY and COS_GRUB hold what the firmware and GRUB read)",
				join(path, "encrypted_partitions"), l, strings.Join(EncryptableLabels, ", "))
		case seen[l]:
			d.errorf(child(n, "encrypted_partitions"), "%s: %s is listed twice", join(path, "encrypted_partitions"), l)
		}
		seen[l] = true
	}
	if p := i.Encryption.RecoveryPassphrase; p != "" && len(p) < 8 {
		// Not the passphrase itself: errors are printed.
		d.errorf(child(child(n, "encryption"), "recovery_passphrase"), "%s: a recovery passphrase of %d characters is too short (at least 8)", join(path, "encryption.recovery_passphrase"), len(p))
	}
	if i.Encryption.RecoveryPassphrase != "" && len(i.EncryptedParts) == 0 {
		d.errorf(child(n, "encryption"), "%s: recovery_passphrase is set but encrypted_partitions names no partition", join(path, "encryption"))
	}
	parts := child(n, "partitions")
	for j := 0; j+1 < len(parts.Content) && parts != n; j += 2 {
		if k := parts.Content[j]; !slices.Contains([]string{"oem", "recovery", "state", "persistent"}, k.Value) {
			d.errorf(k, "%s: %q is not one of oem, recovery, state, persistent", join(path, "partitions"), k.Value)
		}
	}
}

// Reset is `reset:`.
type Reset struct {
	ResetPersistent *bool `yaml:"reset-persistent" alias:"reset_persistent"`
	ResetOEM        bool  `yaml:"reset-oem" alias:"reset_oem"`
	Reboot          bool  `yaml:"reboot"`
	Poweroff        bool  `yaml:"poweroff"`
}

// Upgrade is `upgrade:`.
type Upgrade struct {
	Source   string `yaml:"source"`
	Recovery bool   `yaml:"recovery"`
	Reboot   bool   `yaml:"reboot"`
	Poweroff bool   `yaml:"poweroff"`
	// VerifyKey is a cosign public key (a path on the node, or the PEM
	// itself): an upgrade image without a valid signature by it is refused.
	VerifyKey string `yaml:"verify_key"`
}

// checkEnvList refuses env entries that are not KEY=VALUE.
func checkEnvList(d *decoder, n *yaml.Node, path string, env []string) {
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !envName.MatchString(k) || strings.ContainsAny(v, "\n\x00") {
			d.errorf(n, "%s: %q is not KEY=VALUE", name(path), kv)
		}
	}
}

func (k *Kubernetes) decodeYAML(d *decoder, n *yaml.Node, path string) {
	type plain Kubernetes
	d.decode(n, reflectOf((*plain)(k)), path)
	checkEnv(d, child(n, "env"), join(path, "env"), k.Env)
}

// Kubernetes is `k3s:` and `k3s-agent:`.
type Kubernetes struct {
	Enabled          bool              `yaml:"enabled"`
	Args             []string          `yaml:"args"`
	Env              map[string]string `yaml:"env"`
	ReplaceArgs      bool              `yaml:"replace_args"`
	ReplaceEnv       bool              `yaml:"replace_env"`
	EmbeddedRegistry bool              `yaml:"embedded_registry" unsupported:""`
}

// P2P is `p2p:`: the mesh nodes sharing a token form.
type P2P struct {
	NetworkToken string  `yaml:"network_token"`
	NetworkID    string  `yaml:"network_id"`
	Role         string  `yaml:"role"`
	DNS          bool    `yaml:"dns"`
	LogLevel     string  `yaml:"loglevel"`
	DisableDHT   bool    `yaml:"disable_dht"`
	MinimumNodes int     `yaml:"minimum_nodes"`
	DynamicRoles bool    `yaml:"dynamic_roles" unsupported:"roles are kept once taken"`
	Distribution string  `yaml:"distribution"`
	VPN          P2PVPN  `yaml:"vpn"`
	Auto         P2PAuto `yaml:"auto"`
}

// P2PVPN is the mesh's VPN.
type P2PVPN struct {
	Create *bool             `yaml:"create"`
	Use    *bool             `yaml:"use"`
	Env    map[string]string `yaml:"env"`
}

// P2PAuto is automatic cluster formation.
type P2PAuto struct {
	Enable *bool `yaml:"enable" alias:"enabled"`
	HA     P2PHA `yaml:"ha"`
}

// P2PHA is a highly available control plane.
type P2PHA struct {
	Enable      *bool  `yaml:"enable" alias:"enabled"`
	MasterNodes *int   `yaml:"master_nodes"`
	ExternalDB  string `yaml:"external_db" unsupported:"an external datastore: HA uses k3s's embedded etcd"`
}

func (p *P2P) decodeYAML(d *decoder, n *yaml.Node, path string) {
	type plain P2P
	d.decode(n, reflectOf((*plain)(p)), path)
	if p.Role != "" && !slices.Contains([]string{"master", "worker", "none", "auto"}, p.Role) {
		d.errorf(child(n, "role"), "%s: %q is not one of master, worker, none, auto", join(path, "role"), p.Role)
	}
	// A template is rendered before this runs; an empty token is no mesh.
	if p.NetworkToken != "" {
		if _, err := token.Parse(p.NetworkToken); err != nil {
			d.errorf(child(n, "network_token"), "%s: %v", join(path, "network_token"), err)
		}
	}
	if p.Distribution != "" && p.Distribution != "k3s" {
		d.errorf(child(n, "distribution"), "%s: %q: this agent deploys k3s only", join(path, "distribution"), p.Distribution)
	}
	if p.MinimumNodes < 0 {
		d.errorf(child(n, "minimum_nodes"), "%s: %d is negative", join(path, "minimum_nodes"), p.MinimumNodes)
	}
	if m := p.Auto.HA.MasterNodes; m != nil && *m < 1 {
		d.errorf(child(child(child(n, "auto"), "ha"), "master_nodes"), "%s: %d: at least 1", join(path, "auto.ha.master_nodes"), *m)
	}
	if p.LogLevel != "" && !slices.Contains([]string{"debug", "info", "warn", "error", "fatal"}, p.LogLevel) {
		d.warnf(child(n, "loglevel"), "%s: %q is not a log level (debug, info, warn, error)", join(path, "loglevel"), p.LogLevel)
	}
	if p.VPN.Create != nil && !*p.VPN.Create && p.VPN.Use != nil && *p.VPN.Use {
		d.errorf(child(child(n, "vpn"), "use"), "%s: true, but vpn.create is false: there is no VPN to use", join(path, "vpn.use"))
	}
	for k := range p.VPN.Env {
		if !slices.Contains(P2PEnv, k) {
			d.warnf(child(child(n, "vpn"), "env"), "%s: %s is not read by this agent (it reads %s)", join(path, "vpn.env"), k, strings.Join(P2PEnv, ", "))
		}
	}
}

// P2PEnv are the mesh service's environment variables the agent reads
// (internal/p2p/node.Env says what each does).
var P2PEnv = []string{"ADDRESS", "DNSADDRESS", "DNSFORWARD", "DNSFORWARDSERVER", "EDGEVPNBOOTSTRAPPEERS", "EDGEVPNDHT", "EDGEVPNLISTENMADDRS", "EDGEVPNMTU", "EDGEVPNTOKEN", "IFACE"}

// Bundle is an image that adds to the system: `targets: [run://<image>]`
// runs the image's run.sh, `container://<image>` copies its files in;
// local_file takes the image from a `docker save` or OCI archive on the
// node (airgap).
type Bundle struct {
	Targets    []string `yaml:"targets"`
	LocalFile  bool     `yaml:"local_file"`
	Repository string   `yaml:"repository" unsupported:"luet repositories"`
	RootfsPath string   `yaml:"rootfs_path" unsupported:""`
	DBPath     string   `yaml:"db_path" unsupported:"luet's database"`
}

// BundleSchemes are the target kinds the agent installs.
var BundleSchemes = []string{"run://", "container://", "docker://"}

func (b *Bundle) decodeYAML(d *decoder, n *yaml.Node, path string) {
	type plain Bundle
	d.decode(n, reflectOf((*plain)(b)), path)
	for i, t := range b.Targets {
		scheme, ref, ok := strings.Cut(t, "://")
		switch {
		case !ok || ref == "":
			d.errorf(child(n, "targets"), "%s.targets[%d]: %q is not a bundle target (%s<image>)", name(path), i, t, strings.Join(BundleSchemes, "<image>, "))
		case !slices.Contains(BundleSchemes, scheme+"://"):
			d.errorf(child(n, "targets"), "%s.targets[%d]: %s:// bundles (luet packages) are not supported by this agent: use run:// or container://", name(path), i, scheme)
		}
	}
}
