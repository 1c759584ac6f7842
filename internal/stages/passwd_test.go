package stages

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shadowFields maps each user of root's /etc/shadow to its password field.
func shadowFields(t *testing.T, root string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "etc/shadow"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Split(l, ":")
		if len(f) != 9 {
			t.Errorf("shadow line %q has %d fields: a passwd was stored unhashed", l, len(f))
			continue
		}
		out[f[0]] = f[1]
	}
	return out
}

// verifies says whether field is the SHA-512 crypt of plain.
func verifies(field, plain string) bool {
	parts := strings.Split(field, "$")
	return len(parts) == 4 && parts[1] == "6" && sha512Crypt(plain, parts[2]) == field
}

// A passwd is taken as a hash only when it is one: a password that merely
// starts with "$" is hashed like any other, never stored as it is.
func TestPasswdHashedUnlessCryptHash(t *testing.T) {
	const yescrypt = "$y$j9T$F5Jx5fExrKuJdvXZx4C5l.$Vd0M0n7vQu0OeT.mldUWb5Bz5Tz3MEpxO7GnA6lXl8C"
	plain := map[string]string{
		"dollar":     "$ecret",
		"shortsha":   "$6$short",
		"colon":      "$1$x:0:0:root",
		"newline":    "$6$a$b\nroot::0:0",
		"bang":       "!not-a-hash",
		"sha512salt": "$6$abcdefghijklmnopq$" + strings.Repeat("a", 86), // salt over 16
	}
	hashes := map[string]string{
		"sha512":   kairosHash,
		"yescrypt": yescrypt,
		"locked":   "!" + kairosHash,
		"bangonly": "!",
		"star":     "*",
	}
	root := t.TempDir()
	writeConfig(t, root, "/etc", "passwd", "root:x:0:0:root:/root:/bin/sh\n")
	writeConfig(t, root, "/etc", "group", "root:x:0:\n")
	writeConfig(t, root, "/etc", "shadow", "root:*:19000:0:99999:7:::\n")
	var cfg strings.Builder
	cfg.WriteString("#cloud-config\nusers:\n")
	for _, m := range []map[string]string{plain, hashes} {
		for name, pw := range m {
			cfg.WriteString("  - name: " + name + "\n    passwd: " + strings.ReplaceAll(yamlQuote(pw), "\n", `\n`) + "\n")
		}
	}
	if run := runConfig(t, root, UsersStage, cfg.String()); run.err != nil {
		t.Fatal(run.err)
	}
	got := shadowFields(t, root)
	for name, pw := range plain {
		if !verifies(got[name], pw) {
			t.Errorf("%s: passwd %q stored as %q; want its SHA-512 crypt", name, pw, got[name])
		}
	}
	for name, h := range hashes {
		if got[name] != h {
			t.Errorf("%s: hash %q stored as %q; want it as is", name, h, got[name])
		}
	}
}

func yamlQuote(s string) string { return `"` + strings.ReplaceAll(s, `\`, `\\`) + `"` }

func TestIsCryptHash(t *testing.T) {
	sha512 := sha512Crypt("pw", "saltstring")
	for _, c := range []struct {
		passwd string
		hash   bool
	}{
		{"$1$abcdefgh$IQtUouv7y7Q9dRWkQEPCc.", true},
		{"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", true},
		{"$2y$05$" + strings.Repeat("a", 53), true},
		{"$5$saltstring$gpdvZHQ.qundoWJjAZwNzbBrhvpB73knRq.7HdH6Y9.", true},
		{"$5$rounds=10000$saltstring$" + strings.Repeat("B", 43), true},
		{sha512, true},
		{"$6$rounds=656000$" + sha512[3:], true},
		{"$y$j9T$F5Jx5fExrKuJdvXZx4C5l.$Vd0M0n7vQu0OeT.mldUWb5Bz5Tz3MEpxO7GnA6lXl8C", true},
		{"$gy$j9T$salt$" + strings.Repeat("x", 43), true},
		{"!", true},
		{"!!", true},
		{"!!" + sha512, true},
		{"*", true},
		{"!" + sha512, true},
		{"*" + sha512, true},

		{"", false},
		{"!ecret", false},
		{"**", false},
		{"$ecret", false},
		{"$6$short", false},
		{"$6$salt$tooshort", false},
		{sha512 + "x", false},
		{sha512 + "\n", false},
		{"$6$saltstringsaltstr$" + strings.Repeat("a", 86), false}, // salt over 16
		{"$6$sa:t$" + strings.Repeat("a", 86), false},
		{"$1$abcdefghi$IQtUouv7y7Q9dRWkQEPCc.", false}, // salt over 8
		{"$2b$3$" + strings.Repeat("a", 53), false},
		{"$2x$12$" + strings.Repeat("a", 53), false},
		{"$7$" + sha512[3:], false},
		{"$5$rounds=$salt$" + strings.Repeat("B", 43), false},
		{"$y$$salt$" + strings.Repeat("x", 43), false},
		{"!$ecret", false},
		{"**" + sha512, false},
	} {
		if got := isCryptHash(c.passwd); got != c.hash {
			t.Errorf("isCryptHash(%q) = %v", c.passwd, got)
		}
	}
}
