package stages

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// kairosHash is a SHA-512 crypt hash (of "hunter2"), stored as it is.
const kairosHash = "$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJoCT6dfnj."

func TestUsersAndDNS(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, "/etc", "passwd", "root:x:0:0:root:/root:/bin/sh\nkairos:x:1000:1000:kairos:/home/kairos:/bin/sh\n")
	writeConfig(t, root, "/etc", "group", "root:x:0:\nkairos:x:1000:\nwheel:x:10:root\n")
	writeConfig(t, root, "/etc", "shadow", "root:*:19000:0:99999:7:::\nkairos:$6$old$hash:19000:0:99999:7:::\n")
	os.Chmod(filepath.Join(root, "etc/shadow"), 0o640)
	writeConfig(t, root, "/oem", "90_custom.yaml", `#cloud-config
users:
  - name: tester
    passwd: s3cret
    groups: [wheel, docker]
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3Nza tester@example
      - github:tester
  - name: kairos
    passwd: "`+kairosHash+`"
stages:
  boot:
    - users:
        svc:
          lock_passwd: true
          homedir: /var/lib/svc
      dns:
        nameservers: [10.0.2.3, 1.1.1.1]
        search: [example.org]
`)
	sources, errs := Load(root, []string{"/oem"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	// github:tester is fetched from a local server standing for GitHub.
	testerKey := testKey(t, "tester@github")
	r := Runner{Root: root, Keys: fetcher(keyServer(t, map[string]string{"/tester.keys": testerKey + "\n"}))}
	if err := r.RunStage(context.Background(), sources, UsersStage); err != nil {
		t.Fatal(err)
	}
	if err := r.RunStage(context.Background(), sources, "boot"); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	passwd, group, shadow := read("etc/passwd"), read("etc/group"), read("etc/shadow")
	for _, want := range []string{"tester:x:1001:1001:tester:/home/tester:/bin/sh\n", "svc:x:1002:1003:svc:/var/lib/svc:/bin/sh\n", "kairos:x:1000:1000:"} {
		if !strings.Contains(passwd, want) {
			t.Errorf("passwd lacks %q:\n%s", want, passwd)
		}
	}
	for _, want := range []string{"wheel:x:10:root,tester\n", "docker:x:", ":tester\n", "tester:x:1001:"} {
		if !strings.Contains(group, want) {
			t.Errorf("group lacks %q:\n%s", want, group)
		}
	}
	if !strings.Contains(shadow, "kairos:"+kairosHash+":") || !strings.Contains(shadow, "svc:!:") {
		t.Errorf("shadow:\n%s", shadow)
	}
	// The plain password is stored hashed, and the hash checks with openssl.
	var hash string
	for _, l := range strings.Split(shadow, "\n") {
		if f := strings.Split(l, ":"); f[0] == "tester" {
			hash = f[1]
		}
	}
	if strings.Contains(shadow, "s3cret") || !strings.HasPrefix(hash, "$6$") {
		t.Fatalf("tester's password not hashed: %q", hash)
	}
	salt := strings.Split(hash, "$")[2]
	out, err := exec.Command("openssl", "passwd", "-6", "-salt", salt, "s3cret").Output()
	if err != nil || strings.TrimSpace(string(out)) != hash {
		t.Errorf("openssl hash %q (%v), stored %q", out, err, hash)
	}
	if st, _ := os.Stat(filepath.Join(root, "etc/shadow")); st.Mode().Perm() != 0o640 {
		t.Errorf("shadow mode %v", st.Mode())
	}
	if keys := read("home/tester/.ssh/authorized_keys"); keys != "ssh-ed25519 AAAAC3Nza tester@example\n"+testerKey+"\n" {
		t.Errorf("authorized_keys %q", keys)
	}
	if resolv := read("etc/resolv.conf"); !strings.Contains(resolv, "nameserver 10.0.2.3\nnameserver 1.1.1.1\nsearch example.org\n") {
		t.Errorf("resolv.conf %q", resolv)
	}
	// Running again changes nothing but the fresh hash's salt.
	if err := r.RunStage(context.Background(), sources, UsersStage); err != nil {
		t.Fatal(err)
	}
	if p := read("etc/passwd"); p != passwd {
		t.Errorf("second run changed passwd:\n%s", p)
	}
	if keys := read("home/tester/.ssh/authorized_keys"); keys != "ssh-ed25519 AAAAC3Nza tester@example\n"+testerKey+"\n" {
		t.Errorf("second run: authorized_keys %q; want no key twice", keys)
	}
}

// A new user is made from every field given; an existing one keeps its
// uid, gid, gecos, home and shell, and gets its password and groups. The
// root is accountsRoot's: kairos (1000) exists, groups root 0, shadow 42,
// wheel 10, audio 29, kairos 1000, no "users" group, no /bin/bash.
func TestNewUserFields(t *testing.T) {
	for _, c := range []struct {
		name    string
		users   cloudconfig.Users
		passwd  []string // rows /etc/passwd must have
		group   []string // rows /etc/group must have
		noGroup []string // groups that must not be made
		shadow  []string // row beginnings /etc/shadow must have
		homes   []string // homes made (0750, the user's)
		noHomes []string // homes not made
		err     string   // what the error says, "" for none
	}{{
		name:   "defaults",
		users:  cloudconfig.Users{{Name: "d"}},
		passwd: []string{"d:x:1001:1001:d:/home/d:/bin/sh"},
		group:  []string{"d:x:1001:"},
		shadow: []string{"d:!:"},
		homes:  []string{"/home/d"},
	}, {
		name:   "gecos",
		users:  cloudconfig.Users{{Name: "g", Gecos: "Gee Whiz,Room 1,,"}},
		passwd: []string{"g:x:1001:1001:Gee Whiz,Room 1,,:/home/g:/bin/sh"},
	}, {
		name:    "primary_group existing",
		users:   cloudconfig.Users{{Name: "p", PrimaryGroup: "wheel"}},
		passwd:  []string{"p:x:1001:10:p:/home/p:/bin/sh"},
		group:   []string{"wheel:x:10:root"},
		noGroup: []string{"p"},
	}, {
		name:    "primary_group made",
		users:   cloudconfig.Users{{Name: "p", PrimaryGroup: "devs"}},
		passwd:  []string{"p:x:1001:1001:p:/home/p:/bin/sh"},
		group:   []string{"devs:x:1001:"},
		noGroup: []string{"p"},
	}, {
		name:    "primary_group made with the gid given",
		users:   cloudconfig.Users{{Name: "p", PrimaryGroup: "devs", GID: "4000"}},
		passwd:  []string{"p:x:1001:4000:p:/home/p:/bin/sh"},
		group:   []string{"devs:x:4000:"},
		noGroup: []string{"p"},
	}, {
		name:  "primary_group with another gid than given",
		users: cloudconfig.Users{{Name: "p", PrimaryGroup: "wheel", GID: "11"}},
		err:   "primary_group wheel has gid 10, not the gid 11 given",
	}, {
		name:    "no_user_group",
		users:   cloudconfig.Users{{Name: "n1", NoUserGroup: true}, {Name: "n2", NoUserGroup: true}},
		passwd:  []string{"n1:x:1001:100:n1:/home/n1:/bin/sh", "n2:x:1002:100:n2:/home/n2:/bin/sh"},
		group:   []string{"users:x:100:"},
		noGroup: []string{"n1", "n2"},
	}, {
		name:    "no_user_group with primary_group",
		users:   cloudconfig.Users{{Name: "n", NoUserGroup: true, PrimaryGroup: "audio"}},
		passwd:  []string{"n:x:1001:29:n:/home/n:/bin/sh"},
		noGroup: []string{"n", "users"},
	}, {
		name:   "system",
		users:  cloudconfig.Users{{Name: "s1", System: true}, {Name: "s2", System: true, Groups: []string{"svc"}}},
		passwd: []string{"s1:x:999:999:s1:/home/s1:/bin/sh", "s2:x:998:998:s2:/home/s2:/bin/sh"},
		group:  []string{"s1:x:999:", "s2:x:998:", "svc:x:1001:s2"},
	}, {
		name:   "uid and gid given",
		users:  cloudconfig.Users{{Name: "i", UID: "2000", GID: "3000"}},
		passwd: []string{"i:x:2000:3000:i:/home/i:/bin/sh"},
		group:  []string{"i:x:3000:"},
	}, {
		name:    "gid of a group there",
		users:   cloudconfig.Users{{Name: "i", UID: "2000", GID: "29"}},
		passwd:  []string{"i:x:2000:29:i:/home/i:/bin/sh"},
		noGroup: []string{"i"},
	}, {
		name:   "uid given, its gid taken",
		users:  cloudconfig.Users{{Name: "i", UID: "10"}},
		passwd: []string{"i:x:10:1001:i:/home/i:/bin/sh"},
		group:  []string{"i:x:1001:"},
	}, {
		name:    "homedir, shell, no_create_home",
		users:   cloudconfig.Users{{Name: "h", Homedir: "/srv/h", Shell: "/bin/sh"}, {Name: "x", NoCreateHome: true}},
		passwd:  []string{"h:x:1001:1001:h:/srv/h:/bin/sh", "x:x:1002:1002:x:/home/x:/bin/sh"},
		homes:   []string{"/srv/h"},
		noHomes: []string{"/home/x"},
	}, {
		name:   "lock_passwd",
		users:  cloudconfig.Users{{Name: "l", LockPasswd: true}, {Name: "m", Passwd: kairosHash}},
		shadow: []string{"l:!:", "m:" + kairosHash + ":"},
	}, {
		name: "existing user keeps its account",
		users: cloudconfig.Users{{Name: "kairos", UID: "4242", GID: "4242", Gecos: "K", Homedir: "/srv/k", Shell: "/bin/zsh",
			PrimaryGroup: "staff", System: true, Passwd: kairosHash, Groups: []string{"wheel"}}},
		passwd:  []string{"kairos:x:1000:1000:kairos:/home/kairos:/bin/sh"},
		group:   []string{"wheel:x:10:root,kairos", "kairos:x:1000:"},
		noGroup: []string{"staff"},
		shadow:  []string{"kairos:" + kairosHash + ":"},
		noHomes: []string{"/srv/k"},
	}, {
		name:  "colon in gecos",
		users: cloudconfig.Users{{Name: "c", Gecos: "a:0:0"}},
		err:   "a colon or line break cannot be in /etc/passwd",
	}, {
		name:  "relative homedir",
		users: cloudconfig.Users{{Name: "c", Homedir: "home/c"}},
		err:   "is not an absolute path",
	}} {
		t.Run(c.name, func(t *testing.T) {
			root := accountsRoot(t, true)
			before := readFile(t, root, "etc/passwd")
			err := Runner{Root: root}.applyUsers(context.Background(), c.users)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("error %v; want %q", err, c.err)
				}
				if got := readFile(t, root, "etc/passwd"); got != before {
					t.Errorf("passwd changed:\n%s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			passwd, group, shadow := readFile(t, root, "etc/passwd"), readFile(t, root, "etc/group"), readFile(t, root, "etc/shadow")
			for _, want := range c.passwd {
				if !strings.Contains("\n"+passwd, "\n"+want+"\n") {
					t.Errorf("passwd lacks %q:\n%s", want, passwd)
				}
			}
			for _, want := range c.group {
				if !strings.Contains("\n"+group, "\n"+want+"\n") {
					t.Errorf("group lacks %q:\n%s", want, group)
				}
			}
			for _, name := range c.noGroup {
				if strings.Contains("\n"+group, "\n"+name+":") {
					t.Errorf("group %s made:\n%s", name, group)
				}
			}
			for _, want := range c.shadow {
				if !strings.Contains("\n"+shadow, "\n"+want) {
					t.Errorf("shadow lacks %q:\n%s", want, shadow)
				}
			}
			for _, u := range c.users {
				if u.System {
					if id := accountID(passwd, u.Name); id >= 1000 && u.Name != "kairos" {
						t.Errorf("system user %s has uid %d", u.Name, id)
					}
				}
			}
			for _, h := range c.homes {
				if got := info(t, root, h); got.mode != fs.ModeDir|0o750 || got.uid == 0 {
					t.Errorf("home %s: mode %v owner %d", h, got.mode, got.uid)
				}
			}
			for _, h := range c.noHomes {
				if _, err := os.Lstat(filepath.Join(root, h)); err == nil {
					t.Errorf("home %s made", h)
				}
			}
			// Every group is in gshadow too, and shadow-utils finds the
			// tables consistent.
			if out, err := shadowCheck(t, "grpck", root); err != nil || out != "" {
				t.Errorf("grpck -r -R: %v\n%s", err, out)
			}
		})
	}
}

// accountID is the uid of name in the passwd text, -1 when missing.
func accountID(passwd, name string) int {
	for _, l := range strings.Split(passwd, "\n") {
		if f := strings.Split(l, ":"); len(f) > 2 && f[0] == name {
			var id int
			if _, err := fmt.Sscan(f[2], &id); err == nil {
				return id
			}
		}
	}
	return -1
}
