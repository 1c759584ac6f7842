package stages

import (
	"bytes"
	"context"
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

// table is one account file below a root (/etc/passwd, group, shadow or
// gshadow) as rows of colon-separated fields, edited as text so the same
// code serves the running system and an image being assembled. It keeps
// what the file held when read: only a file that changed is written, and
// what it held becomes its backup.
type table struct {
	path    string
	mode    os.FileMode // of the file when it has to be made
	rows    [][]string
	old     []byte
	present bool
}

func readTable(root, path string, mode os.FileMode) (*table, error) {
	t := &table{path: path, mode: mode}
	data, err := safefile.ReadFile(root, path)
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	t.present, t.old = true, data
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		t.rows = append(t.rows, strings.Split(line, ":"))
	}
	return t, nil
}

func (t *table) bytes() []byte {
	var b strings.Builder
	for _, r := range t.rows {
		b.WriteString(strings.Join(r, ":") + "\n")
	}
	return []byte(b.String())
}

func (t *table) changed() bool {
	if !t.present {
		return len(t.rows) > 0
	}
	return !bytes.Equal(t.bytes(), t.old)
}

// find is the row of name as it is, or nil.
func (t *table) find(name string) []string {
	for _, r := range t.rows {
		if r[0] == name {
			return r
		}
	}
	return nil
}

// row is the row of name with at least n fields (a short line gets empty
// ones, so a field can be set without running off its end), or nil. The
// row is the table's own: setting a field changes the table.
func (t *table) row(name string, n int) []string {
	for i, r := range t.rows {
		if r[0] == name {
			for len(t.rows[i]) < n {
				t.rows[i] = append(t.rows[i], "")
			}
			return t.rows[i]
		}
	}
	return nil
}

// add puts a new row before the first NIS compat entry ("+name", "-name",
// "+"), where shadow-utils puts new entries: glibc's compat lookup goes in
// order, so a local entry after "+" could be hidden by a NIS one. It gives
// the table's row.
func (t *table) add(row []string) []string {
	i := slices.IndexFunc(t.rows, func(r []string) bool { return isNISEntry(r[0]) })
	if i < 0 {
		i = len(t.rows)
	}
	t.rows = slices.Insert(t.rows, i, row)
	return t.rows[i]
}

func isNISEntry(name string) bool {
	return strings.HasPrefix(name, "+") || strings.HasPrefix(name, "-")
}

// accounts are the account files of a root, read and written together
// under the account files lock.
type accounts struct {
	passwd, group, shadow *table
	// gshadow is nil when the root has none (busybox systems, minimal
	// images): groups then live in /etc/group alone and none is made.
	gshadow *table
}

func readAccounts(root string) (*accounts, error) {
	var a accounts
	var err error
	if a.passwd, err = readTable(root, "/etc/passwd", 0o644); err != nil {
		return nil, err
	}
	if a.group, err = readTable(root, "/etc/group", 0o644); err != nil {
		return nil, err
	}
	if a.shadow, err = readTable(root, "/etc/shadow", 0o640); err != nil {
		return nil, err
	}
	if a.gshadow, err = readTable(root, "/etc/gshadow", 0o640); err != nil {
		return nil, err
	}
	if !a.gshadow.present {
		a.gshadow = nil
	}
	return &a, nil
}

// addGroup makes the group name with gid and no members, in /etc/gshadow
// too (with the locked password "!", as groupadd writes).
func (a *accounts) addGroup(name string, gid int) []string {
	g := a.group.add([]string{name, "x", strconv.Itoa(gid), ""})
	a.shadowGroup(g)
	return g
}

// shadowGroup is the /etc/gshadow row of the group whose /etc/group row is
// g, made when missing (nil when the root has no gshadow). A new row takes
// the group's members, no administrators and the password /etc/group has,
// as grpck would copy them, except that "x" (the password is in gshadow)
// becomes "!", locked: what the missing row meant and what groupadd
// writes.
func (a *accounts) shadowGroup(g []string) []string {
	if a.gshadow == nil {
		return nil
	}
	if sg := a.gshadow.row(g[0], 4); sg != nil {
		return sg
	}
	pw, members := "!", ""
	if len(g) > 1 && g[1] != "x" {
		pw = g[1]
	}
	if len(g) > 3 {
		members = g[3]
	}
	return a.gshadow.add([]string{g[0], pw, "", members})
}

// addMember puts user in the member list of group, in /etc/group and
// /etc/gshadow alike: tools that read gshadow (newgrp, gpasswd, grpck)
// must not see a different list.
func (a *accounts) addMember(group, user string) {
	g := a.group.row(group, 4)
	g[3] = withMember(g[3], user)
	if sg := a.shadowGroup(g); sg != nil {
		sg[3] = withMember(sg[3], user)
	}
}

// withMember is the comma-separated list with name in it, as it was when
// name already is.
func withMember(list, name string) string {
	members := strings.FieldsFunc(list, func(c rune) bool { return c == ',' })
	if slices.Contains(members, name) {
		return list
	}
	return strings.Join(append(members, name), ",")
}

// completeGshadow gives every group of /etc/group a gshadow row: grpck
// reports a group without one, and gpasswd or newgrp would find none.
func (a *accounts) completeGshadow() {
	if a.gshadow == nil {
		return
	}
	for _, g := range a.group.rows {
		// Rows that are there are left as they are, however short.
		if g[0] != "" && !isNISEntry(g[0]) && a.gshadow.find(g[0]) == nil {
			a.shadowGroup(g)
		}
	}
}

// write replaces each changed file by a whole new one (safefile renames a
// synced temporary file into place: a reader sees the old table or the
// new one), with the mode and owner it had: shadow and gshadow are 0640
// root:shadow on Debian, 0000 on Fedora, and must stay closed.
//
// The backups passwd-, group-, shadow- and gshadow- get what each file
// held, as shadow-utils makes them, all before any file is replaced: a
// backup that cannot be written leaves every table as it was.
//
// The order is shadow, gshadow, group, passwd: should the agent stop
// between two renames, a new account shows in /etc/passwd only once its
// password and groups are in place. A failed write stops the rest, for
// the same reason.
func (a *accounts) write(root string) error {
	type change struct {
		t        *table
		mode     os.FileMode
		uid, gid int
	}
	var changes []change
	for _, t := range []*table{a.shadow, a.gshadow, a.group, a.passwd} {
		if t == nil || !t.changed() {
			continue
		}
		c := change{t, t.mode, -1, -1}
		if st, err := safefile.Lstat(root, t.path); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			c.mode, c.uid, c.gid = os.FileMode(st.Mode&0o777), int(st.Uid), int(st.Gid)
		}
		changes = append(changes, c)
	}
	for _, c := range changes {
		if !c.t.present {
			continue
		}
		if err := safefile.WriteFile(root, c.t.path+"-", c.t.old, c.mode, c.uid, c.gid); err != nil {
			return fmt.Errorf("back up %s, no account file changed: %w", c.t.path, err)
		}
	}
	for _, c := range changes {
		if err := safefile.WriteFile(root, c.t.path, c.t.bytes(), c.mode, c.uid, c.gid); err != nil {
			return fmt.Errorf("write %s: %w", c.t.path, err)
		}
	}
	return nil
}

// freeID is the first id from 1000 that no row uses (field 2).
func freeID(t *table) int {
	used := map[int]bool{}
	for _, r := range t.rows {
		if len(r) > 2 {
			if id, err := strconv.Atoi(r[2]); err == nil {
				used[id] = true
			}
		}
	}
	id := 1000
	for used[id] {
		id++
	}
	return id
}

// account is what a user's home and keys are made from, once the account
// files hold the user.
type account struct {
	user     User
	uid, gid int
	home     string
}

func (r Runner) applyUsers(ctx context.Context, users Users) error {
	made, errs, err := r.updateAccounts(ctx, users)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	// Homes and keys are made after the lock is released: they are the
	// users' files, not the account tables, and a home is made only for an
	// account the tables hold.
	for _, acct := range made {
		if err := r.makeHome(acct); err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", acct.user.Name, err))
		}
	}
	return errors.Join(errs...)
}

// updateAccounts applies users to the account files while holding their
// lock: all four read, every change made in memory, the changed files
// written back. It gives the accounts made or updated, the users that
// failed, and an error when the files could not be locked, read or
// written (then no home is to be made).
func (r Runner) updateAccounts(ctx context.Context, users Users) ([]account, []error, error) {
	unlock, err := lockAccounts(ctx, r.root())
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	a, err := readAccounts(r.root())
	if err != nil {
		return nil, nil, err
	}
	// A user that fails (a bad uid) is reported while the others are still
	// made: one bad entry must not keep the other accounts (root's
	// password among them) from being set.
	var made []account
	var errs []error
	for _, u := range users {
		acct, err := r.applyUser(a, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", u.Name, err))
			continue
		}
		made = append(made, acct)
	}
	a.completeGshadow()
	if err := a.write(r.root()); err != nil {
		return nil, errs, err
	}
	return made, errs, nil
}

// applyUser makes or updates the user in the tables (in memory).
func (r Runner) applyUser(a *accounts, u User) (account, error) {
	pw := a.passwd.find(u.Name)
	if pw == nil {
		uid := freeID(a.passwd)
		if u.UID != "" {
			n, err := strconv.Atoi(u.UID)
			if err != nil || n < 0 {
				return account{}, fmt.Errorf("uid %q is not a number", u.UID)
			}
			uid = n
		}
		gid := uid
		if g := a.group.find(u.Name); g != nil {
			if len(g) < 3 {
				return account{}, fmt.Errorf("malformed /etc/group entry %s", u.Name)
			}
			n, err := strconv.Atoi(g[2])
			if err != nil {
				return account{}, fmt.Errorf("malformed /etc/group entry %s", u.Name)
			}
			gid = n
		} else {
			if slices.ContainsFunc(a.group.rows, func(g []string) bool { return len(g) > 2 && g[2] == strconv.Itoa(gid) }) {
				gid = freeID(a.group)
			}
			a.addGroup(u.Name, gid)
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
		pw = a.passwd.add([]string{u.Name, "x", strconv.Itoa(uid), strconv.Itoa(gid), u.Name, home, shell})
	}
	if len(pw) != 7 {
		return account{}, fmt.Errorf("malformed /etc/passwd entry")
	}
	uid, uerr := strconv.Atoi(pw[2])
	gid, gerr := strconv.Atoi(pw[3])
	if uerr != nil || gerr != nil {
		// Taken as 0, a garbled id would give the home to root.
		return account{}, fmt.Errorf("malformed /etc/passwd entry: uid %q, gid %q", pw[2], pw[3])
	}

	hash := "!"
	switch {
	case isCryptHash(u.Passwd):
		hash = u.Passwd
	case u.Passwd != "":
		h, err := HashPassword(u.Passwd)
		if err != nil {
			return account{}, err
		}
		hash = h
	case u.LockPasswd:
		hash = "!"
	default:
		if sh := a.shadow.row(u.Name, 2); sh != nil {
			hash = sh[1] // an existing password is kept
		}
	}
	if sh := a.shadow.row(u.Name, 2); sh != nil {
		sh[1] = hash
	} else {
		a.shadow.add([]string{u.Name, hash, "", "0", "99999", "7", "", "", ""})
	}

	for _, g := range u.Groups {
		if a.group.find(g) == nil {
			a.addGroup(g, freeID(a.group))
		}
		a.addMember(g, u.Name)
	}
	return account{user: u, uid: uid, gid: gid, home: pw[5]}, nil
}

// makeHome makes the user's home, when missing, and writes the SSH keys.
func (r Runner) makeHome(acct account) error {
	u := acct.user
	uid, gid := owner(acct.uid, acct.gid)
	home := acct.home
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
