package flavors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseOSRelease(t *testing.T) {
	got := ParseOSRelease([]byte("# a comment\n" +
		"ID=alpine\r\n" +
		"  VERSION_ID=\"3.20.3\"  \n" +
		"NAME='Single Quoted'\n" +
		"PRETTY_NAME=\"say \\\"hi\\\" \\\\ \\$HOME \\`x\\`\"\n" +
		"EMPTY=\n" +
		"EMPTY_QUOTED=\"\"\n" +
		"not an assignment\n" +
		"BAD KEY=1\n" +
		"#ID=commented\n"))
	want := map[string]string{
		"ID": "alpine", "VERSION_ID": "3.20.3", "NAME": "Single Quoted",
		"PRETTY_NAME": "say \"hi\" \\ $HOME `x`", "EMPTY": "", "EMPTY_QUOTED": "",
	}
	if len(got) != len(want) {
		t.Errorf("parsed %d variables, want %d: %q", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// The os-release files under testdata are the ones each distro release
// ships; each is named after the flavor it must select.
func TestDetectEveryFlavor(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range c.IDs() {
		t.Run(id, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "os-release", id))
			if err != nil {
				t.Fatalf("every flavor needs a sample os-release: %v", err)
			}
			f, err := c.Detect(data)
			if err != nil {
				t.Fatal(err)
			}
			if f.ID() != id {
				t.Errorf("detected %s, want %s", f.ID(), id)
			}
		})
	}
}

func TestDetectDerivativesAndErrors(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ osRelease, want string }{
		"point release of rocky": {"ID=\"rocky\"\nVERSION_ID=\"9.5\"\n", "rocky-9"},
		"tumbleweed any day":     {"ID=\"opensuse-tumbleweed\"\nVERSION_ID=\"20991231\"\n", "opensuse-tumbleweed"},
		"uppercase ID":           {"ID=Debian\nVERSION_ID=12\n", "debian-bookworm"},
		// Derivatives name their base in ID_LIKE and share its VERSION_ID.
		"raspbian":       {"ID=raspbian\nID_LIKE=debian\nVERSION_ID=\"12\"\n", "debian-bookworm"},
		"pop os":         {"ID=pop\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"22.04\"\n", "ubuntu-22.04"},
		"second ID_LIKE": {"ID=derived\nID_LIKE=\"nosuch debian\"\nVERSION_ID=\"12.7\"\n", "debian-bookworm"},
	} {
		t.Run(name, func(t *testing.T) {
			f, err := c.Detect([]byte(tc.osRelease))
			if err != nil {
				t.Fatal(err)
			}
			if f.ID() != tc.want {
				t.Errorf("detected %s, want %s", f.ID(), tc.want)
			}
		})
	}
	for name, tc := range map[string]struct {
		osRelease string
		want      []string
	}{
		"unsupported release": {"ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"20.04\"\n",
			[]string{`ID="ubuntu" VERSION_ID="20.04"`, "22.04, 24.04", "debian-bookworm (ID=debian VERSION_ID=12)"}},
		"not a prefix at a dot": {"ID=alpine\nVERSION_ID=3.200.1\n", []string{`VERSION_ID="3.200.1"`, "3.20, 3.21"}},
		"unknown distro": {"ID=gentoo\nVERSION_ID=2.15\n",
			[]string{`ID="gentoo"`, "no flavor matches", "opensuse-tumbleweed (ID=opensuse-tumbleweed, any VERSION_ID)"}},
		// Linux Mint names Ubuntu but carries its own version.
		"derivative of unsupported release": {"ID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"21.3\"\n",
			[]string{`ID_LIKE="ubuntu debian"`, "no flavor matches"}},
		"no ID": {"NAME=\"Some Linux\"\n", []string{"no ID", "alpine-3.20"}},
	} {
		t.Run(name, func(t *testing.T) {
			f, err := c.Detect([]byte(tc.osRelease))
			if err == nil {
				t.Fatalf("detected %s, want an error", f.ID())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
