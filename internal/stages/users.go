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
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/safefile"
)

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
	return writeTables(root, a.shadow, a.gshadow, a.group, a.passwd)
}

// writeTables writes the tables that changed, in the order given, each
// keeping its file's mode and owner: first every backup (<file>-), then
// the files. A failed write stops the rest.
func writeTables(root string, tables ...*table) error {
	type change struct {
		t        *table
		mode     os.FileMode
		uid, gid int
	}
	var changes []change
	for _, t := range tables {
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
	id := 1000
	for idUsed(t, id) {
		id++
	}
	return id
}

// idUsed says whether a row of t has id (field 2).
func idUsed(t *table, id int) bool {
	return slices.ContainsFunc(t.rows, func(r []string) bool {
		if len(r) < 3 {
			return false
		}
		n, err := strconv.Atoi(r[2])
		return err == nil && n == id
	})
}

// System ids are taken from the top of the range down, as useradd -r and
// groupadd -r do with login.defs' defaults (SYS_UID_MIN 101, SYS_UID_MAX
// 999): the ids distributions' packages take from the bottom stay free.
const (
	sysIDMin = 101
	sysIDMax = 999
)

// freeSystemID is the highest id of the system range that no row of t uses.
func freeSystemID(t *table) (int, error) {
	for id := sysIDMax; id >= sysIDMin; id-- {
		if !idUsed(t, id) {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no free id left in %d-%d in %s", sysIDMin, sysIDMax, t.path)
}

// freeGroupID is a free gid for a new group of a user: the human range,
// or the system one for a system user.
func freeGroupID(a *accounts, system bool) (int, error) {
	if system {
		return freeSystemID(a.group)
	}
	return freeID(a.group), nil
}

// groupID is the gid of the group name, and whether there is one.
func (a *accounts) groupID(name string) (int, bool, error) {
	g := a.group.find(name)
	if g == nil {
		return 0, false, nil
	}
	if len(g) < 3 {
		return 0, true, fmt.Errorf("malformed /etc/group entry %s", name)
	}
	n, err := strconv.Atoi(g[2])
	if err != nil {
		return 0, true, fmt.Errorf("malformed /etc/group entry %s", name)
	}
	return n, true, nil
}

// account is what a user's home and keys are made from, once the account
// files hold the user.
type account struct {
	user     cloudconfig.User
	uid, gid int
	home     string
}

func (r Runner) applyUsers(ctx context.Context, users cloudconfig.Users) error {
	made, errs, err := r.updateAccounts(ctx, users)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	// Homes and keys are made after the lock is released: they are the
	// users' files, not the account tables, a home is made only for an
	// account the tables hold, and keys fetched from the network must not
	// keep useradd or passwd waiting.
	for _, acct := range made {
		if err := r.makeHome(ctx, acct); err != nil {
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
func (r Runner) updateAccounts(ctx context.Context, users cloudconfig.Users) ([]account, []error, error) {
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
//
// A user that is not there is made as useradd would make it, from every
// field given. A user that is there gets the password (when one is given,
// or lock_passwd) and the groups listed; its uid, gid, gecos, home and
// shell are left as they are: the account may have been changed on the
// node since, and moving a home or an id would leave the user's files
// behind.
func (r Runner) applyUser(a *accounts, u cloudconfig.User) (account, error) {
	if err := checkUser(u); err != nil {
		return account{}, err
	}
	pw := a.passwd.find(u.Name)
	if pw == nil {
		var err error
		if pw, err = r.addUser(a, u); err != nil {
			return account{}, err
		}
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

// checkUser refuses fields an account file cannot hold: a colon or a line
// break would split or add a row of /etc/passwd or /etc/group.
func checkUser(u cloudconfig.User) error {
	if err := cloudconfig.CheckUserName(u.Name); err != nil {
		return err
	}
	for _, f := range []struct{ name, value string }{{"gecos", u.Gecos}, {"homedir", u.Homedir}, {"shell", u.Shell}} {
		if strings.ContainsAny(f.value, ":\n\r") {
			return fmt.Errorf("%s %q: a colon or line break cannot be in /etc/passwd", f.name, f.value)
		}
	}
	if u.Homedir != "" && !path.IsAbs(u.Homedir) {
		return fmt.Errorf("homedir %q is not an absolute path", u.Homedir)
	}
	groups := u.Groups
	if u.PrimaryGroup != "" {
		groups = append([]string{u.PrimaryGroup}, groups...)
	}
	for _, g := range groups {
		if err := cloudconfig.CheckUserName(g); err != nil {
			return fmt.Errorf("group: %w", err)
		}
	}
	return nil
}

// addUser puts a new user in /etc/passwd and gives its row:
//
//   - uid: the one given, else the first free from 1000, or for a system
//     user the highest free below 1000 (as useradd -r);
//   - primary group: see primaryGroup;
//   - gecos the one given, else the name; home /home/<name> unless given;
//     shell bash when the root has it, else sh, unless given.
//
// no_log_init is met already: no lastlog or faillog entry is written.
func (r Runner) addUser(a *accounts, u cloudconfig.User) ([]string, error) {
	var uid int
	switch {
	case u.UID != "":
		n, err := strconv.Atoi(u.UID)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("uid %q is not a number", u.UID)
		}
		uid = n
	case u.System:
		n, err := freeSystemID(a.passwd)
		if err != nil {
			return nil, err
		}
		uid = n
	default:
		uid = freeID(a.passwd)
	}
	gid, err := primaryGroup(a, u, uid)
	if err != nil {
		return nil, err
	}
	gecos := u.Gecos
	if gecos == "" {
		gecos = u.Name
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
	return a.passwd.add([]string{u.Name, "x", strconv.Itoa(uid), strconv.Itoa(gid), gecos, home, shell}), nil
}

// primaryGroup is the gid of a new user's primary group, made when missing:
//
//   - primary_group: that group (made with the gid given, else a free one);
//     no group of the user's own is made;
//   - gid alone: that gid; the user's own group gets it unless a group has
//     it already or no_user_group is set;
//   - no_user_group: the group "users" (gid 100 when made, as on every
//     distribution);
//   - else the user's own group, named after it: the one there, or a new
//     one with the uid as gid when that is free, else a free gid.
func primaryGroup(a *accounts, u cloudconfig.User, uid int) (int, error) {
	given := -1
	if u.GID != "" {
		n, err := strconv.Atoi(u.GID)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("gid %q is not a number", u.GID)
		}
		given = n
	}
	if u.PrimaryGroup != "" {
		gid, found, err := a.groupID(u.PrimaryGroup)
		switch {
		case err != nil:
			return 0, err
		case found && given >= 0 && gid != given:
			return 0, fmt.Errorf("primary_group %s has gid %d, not the gid %d given", u.PrimaryGroup, gid, given)
		case found:
			return gid, nil
		}
		gid = given
		if gid < 0 {
			if gid, err = freeGroupID(a, u.System); err != nil {
				return 0, err
			}
		}
		a.addGroup(u.PrimaryGroup, gid)
		return gid, nil
	}
	if given >= 0 {
		if !u.NoUserGroup && a.group.find(u.Name) == nil && !idUsed(a.group, given) {
			a.addGroup(u.Name, given)
		}
		return given, nil
	}
	if u.NoUserGroup {
		gid, found, err := a.groupID("users")
		if err != nil || found {
			return gid, err
		}
		gid = 100
		if idUsed(a.group, gid) {
			if gid, err = freeSystemID(a.group); err != nil {
				return 0, err
			}
		}
		a.addGroup("users", gid)
		return gid, nil
	}
	gid, found, err := a.groupID(u.Name)
	if err != nil || found {
		return gid, err
	}
	gid = uid
	if idUsed(a.group, gid) {
		if gid, err = freeGroupID(a, u.System); err != nil {
			return 0, err
		}
	}
	a.addGroup(u.Name, gid)
	return gid, nil
}

// makeHome makes the user's home, when missing and not no_create_home, and
// adds the user's SSH keys to it (see addKeys).
func (r Runner) makeHome(ctx context.Context, acct account) error {
	u := acct.user
	uid, gid := owner(acct.uid, acct.gid)
	home := acct.home
	if _, err := safefile.Lstat(r.root(), home); errors.Is(err, fs.ErrNotExist) {
		if u.NoCreateHome {
			if len(u.SSHAuthorizedKeys) > 0 {
				return fmt.Errorf("ssh keys: home %s does not exist (no_create_home)", home)
			}
			return nil
		}
		if err := safefile.Dir(r.root(), home, 0o750, uid, gid); err != nil {
			return fmt.Errorf("home: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("home: %w", err)
	}
	if len(u.SSHAuthorizedKeys) == 0 {
		return nil
	}
	return r.addKeys(ctx, home, uid, gid, u.SSHAuthorizedKeys)
}

func (r Runner) writeDNS(d cloudconfig.DNS) error {
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
	root, name := r.at(p)
	return safefile.WriteFile(root, name, []byte(b.String()), 0o644, -1, -1)
}
