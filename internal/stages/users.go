package stages

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/safefile"
)

// User is an account a cloud-config asks for. Passwd is a crypt(3) hash
// ("$6$...", see isCryptHash), or a plain password that is hashed before it
// is stored.
type User struct {
	Name              string   `yaml:"name"`
	Passwd            string   `yaml:"passwd"`
	Groups            []string `yaml:"groups"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
	Homedir           string   `yaml:"homedir"`
	Shell             string   `yaml:"shell"`
	UID               string   `yaml:"uid"`
	LockPasswd        bool     `yaml:"lock_passwd"`
}

// Users is a list of users; YAML may give a list of users with names (the
// cloud-config's top-level users) or a mapping of name to user (stages).
type Users []User

func (u *Users) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.SequenceNode:
		var l []User
		if err := n.Decode(&l); err != nil {
			return err
		}
		*u = l
	case yaml.MappingNode:
		var m map[string]User
		if err := n.Decode(&m); err != nil {
			return err
		}
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			usr := m[k]
			if usr.Name == "" {
				usr.Name = k
			}
			*u = append(*u, usr)
		}
	default:
		return fmt.Errorf("line %d: users: a list or a mapping of users is expected", n.Line)
	}
	for _, usr := range *u {
		if usr.Name == "" || strings.ContainsAny(usr.Name, ":\n/ ") {
			return fmt.Errorf("line %d: users: %q is not a valid user name", n.Line, usr.Name)
		}
	}
	return nil
}

// account files of a root, edited as text so the same code serves the
// running system and an image being assembled.
type accounts struct {
	passwd, group, shadow [][]string
}

func readTable(root, path string) ([][]string, error) {
	data, err := safefile.ReadFile(root, path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		rows = append(rows, strings.Split(line, ":"))
	}
	return rows, nil
}

// writeTable replaces the file, keeping its mode and owner (/etc/shadow is
// not world-readable, and root:shadow on some distributions).
func writeTable(root, path string, rows [][]string, mode os.FileMode) error {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(strings.Join(r, ":") + "\n")
	}
	uid, gid := -1, -1
	if st, err := safefile.Lstat(root, path); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		mode, uid, gid = os.FileMode(st.Mode&0o777), int(st.Uid), int(st.Gid)
	}
	return safefile.WriteFile(root, path, []byte(b.String()), mode, uid, gid)
}

func find(rows [][]string, name string) []string {
	for _, r := range rows {
		if len(r) > 0 && r[0] == name {
			return r
		}
	}
	return nil
}

// freeID is the first id from 1000 that no row uses (field 2).
func freeID(rows ...[][]string) int {
	used := map[int]bool{}
	for _, t := range rows {
		for _, r := range t {
			if len(r) > 2 {
				if id, err := strconv.Atoi(r[2]); err == nil {
					used[id] = true
				}
			}
		}
	}
	id := 1000
	for used[id] {
		id++
	}
	return id
}

func (r Runner) applyUsers(users Users) error {
	var a accounts
	var err error
	if a.passwd, err = readTable(r.root(), "/etc/passwd"); err != nil {
		return err
	}
	if a.group, err = readTable(r.root(), "/etc/group"); err != nil {
		return err
	}
	if a.shadow, err = readTable(r.root(), "/etc/shadow"); err != nil {
		return err
	}
	// A user that fails (a bad uid, a refused ssh key path) is reported
	// while the others are still made: a link planted in one home must not
	// keep the other accounts (root's password among them) from being set.
	var errs []error
	for _, u := range users {
		if err := r.applyUser(&a, u); err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", u.Name, err))
		}
	}
	for _, f := range []struct {
		path string
		rows [][]string
		mode os.FileMode
	}{{"/etc/passwd", a.passwd, 0o644}, {"/etc/group", a.group, 0o644}, {"/etc/shadow", a.shadow, 0o640}} {
		if err := writeTable(r.root(), f.path, f.rows, f.mode); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.path, err))
		}
	}
	return errors.Join(errs...)
}

func (r Runner) applyUser(a *accounts, u User) error {
	pw := find(a.passwd, u.Name)
	if pw == nil {
		uid := freeID(a.passwd)
		if u.UID != "" {
			if _, err := strconv.Atoi(u.UID); err != nil {
				return fmt.Errorf("uid %q is not a number", u.UID)
			}
			uid, _ = strconv.Atoi(u.UID)
		}
		gid := uid
		if g := find(a.group, u.Name); g != nil && len(g) > 2 {
			gid, _ = strconv.Atoi(g[2])
		} else {
			if slices.ContainsFunc(a.group, func(g []string) bool { return len(g) > 2 && g[2] == strconv.Itoa(gid) }) {
				gid = freeID(a.group)
			}
			a.group = append(a.group, []string{u.Name, "x", strconv.Itoa(gid), ""})
		}
		home := u.Homedir
		if home == "" {
			home = "/home/" + u.Name
		}
		shell := u.Shell
		if shell == "" {
			shell = "/bin/sh"
			if _, err := safefile.Lstat(r.root(), "/bin/bash"); err == nil {
				shell = "/bin/bash"
			}
		}
		pw = []string{u.Name, "x", strconv.Itoa(uid), strconv.Itoa(gid), u.Name, home, shell}
		a.passwd = append(a.passwd, pw)
	}
	if len(pw) < 7 {
		return fmt.Errorf("malformed /etc/passwd entry")
	}
	uid, _ := strconv.Atoi(pw[2])
	gid, _ := strconv.Atoi(pw[3])

	hash := "!"
	switch {
	case isCryptHash(u.Passwd):
		hash = u.Passwd
	case u.Passwd != "":
		h, err := HashPassword(u.Passwd)
		if err != nil {
			return err
		}
		hash = h
	case u.LockPasswd:
		hash = "!"
	default:
		if sh := find(a.shadow, u.Name); sh != nil && len(sh) > 1 {
			hash = sh[1] // an existing password is kept
		}
	}
	if sh := find(a.shadow, u.Name); sh != nil {
		sh[1] = hash
	} else {
		a.shadow = append(a.shadow, []string{u.Name, hash, "", "0", "99999", "7", "", "", ""})
	}

	for _, g := range u.Groups {
		grp := find(a.group, g)
		if grp == nil {
			grp = []string{g, "x", strconv.Itoa(freeID(a.group)), ""}
			a.group = append(a.group, grp)
			grp = a.group[len(a.group)-1]
		}
		for len(grp) < 4 {
			grp = append(grp, "")
		}
		members := strings.FieldsFunc(grp[3], func(c rune) bool { return c == ',' })
		if !slices.Contains(members, u.Name) {
			members = append(members, u.Name)
		}
		for i := range a.group {
			if a.group[i][0] == g {
				a.group[i] = append(grp[:3], strings.Join(members, ","))
			}
		}
	}

	uid, gid = owner(uid, gid)
	home := pw[5]
	if _, err := safefile.Lstat(r.root(), home); errors.Is(err, fs.ErrNotExist) {
		if err := safefile.Dir(r.root(), home, 0o750, uid, gid); err != nil {
			return fmt.Errorf("home: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("home: %w", err)
	}
	var keys []string
	for _, k := range u.SSHAuthorizedKeys {
		if strings.HasPrefix(k, "github:") || strings.HasPrefix(k, "gitlab:") {
			logrus.Warnf("user %s: ssh key %q: fetching keys from %s is not supported, skipped", u.Name, k, strings.SplitN(k, ":", 2)[0])
			continue
		}
		keys = append(keys, strings.TrimSpace(k))
	}
	if len(keys) > 0 {
		// sshd wants both the user's and closed to others.
		ssh := path.Join(home, ".ssh")
		if err := safefile.Dir(r.root(), ssh, 0o700, uid, gid); err != nil {
			return fmt.Errorf("ssh keys: %w", err)
		}
		if err := safefile.WriteFile(r.root(), path.Join(ssh, "authorized_keys"), []byte(strings.Join(keys, "\n")+"\n"), 0o600, uid, gid); err != nil {
			return fmt.Errorf("ssh keys: %w", err)
		}
	}
	return nil
}

// DNS is the resolver configuration a step writes.
type DNS struct {
	Nameservers []string `yaml:"nameservers"`
	Search      []string `yaml:"search"`
	Options     []string `yaml:"options"`
	// Path is /etc/resolv.conf unless set.
	Path string `yaml:"path"`
}

func (r Runner) writeDNS(d DNS) error {
	var b strings.Builder
	b.WriteString("# Written by kairos-agent from the cloud-config's dns step.\n")
	for _, ns := range d.Nameservers {
		b.WriteString("nameserver " + ns + "\n")
	}
	if len(d.Search) > 0 {
		b.WriteString("search " + strings.Join(d.Search, " ") + "\n")
	}
	if len(d.Options) > 0 {
		b.WriteString("options " + strings.Join(d.Options, " ") + "\n")
	}
	p := d.Path
	if p == "" {
		p = "/etc/resolv.conf"
	}
	// resolv.conf is often a symlink to a resolver's runtime file: the
	// step replaces it with the file asked for (safefile renames over it).
	return safefile.WriteFile(r.root(), p, []byte(b.String()), 0o644, -1, -1)
}
