package crypt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLabelOfCryptsetupHeader: the label cryptsetup writes is the one
// Label reads (the reference tool, on a file).
func TestLabelOfCryptsetupHeader(t *testing.T) {
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		t.Fatal("cryptsetup not found: apt-get install cryptsetup (./earthly.sh installs it)")
	}
	img := filepath.Join(t.TempDir(), "part.img")
	if err := os.WriteFile(img, make([]byte, 32<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
		"--label", ContainerLabel("COS_PERSISTENT"), "--key-file", "-", img)
	cmd.Stdin = strings.NewReader("test key")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup: %v: %s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	label, ok, err := Label(f)
	if err != nil || !ok || label != "kairos-persistent" {
		t.Fatalf("Label = %q, %v, %v; want kairos-persistent", label, ok, err)
	}
}

func TestLabelNotLUKS(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty": nil, "short": []byte("LUKS\xba\xbe"), "ext4": make([]byte, 4096),
		"luks1": append([]byte("LUKS\xba\xbe\x00\x01"), make([]byte, 100)...),
	} {
		if label, ok, err := Label(bytes.NewReader(data)); ok || err != nil {
			t.Errorf("%s: Label = %q, %v, %v; want not LUKS2", name, label, ok, err)
		}
	}
}

func FuzzLabel(f *testing.F) {
	hdr := append([]byte("LUKS\xba\xbe\x00\x02"), make([]byte, 200)...)
	copy(hdr[labelOffset:], "COS_OEM")
	f.Add(hdr)
	f.Add([]byte("LUKS\xba\xbe\x00\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		label, ok, err := Label(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if !ok && label != "" || len(label) > labelSize || strings.ContainsRune(label, 0) {
			t.Fatalf("Label(%q) = %q, %v", data, label, ok)
		}
	})
}

// TestFind: partitions whose LUKS2 label is one of Labels, not whole
// disks or other labels; two with one label are refused.
func TestFind(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	luks := func(label string) []byte {
		h := append([]byte("LUKS\xba\xbe\x00\x02"), make([]byte, 4096)...)
		copy(h[labelOffset:], label)
		return h
	}
	for name, p := range map[string]struct {
		partition bool
		data      []byte
	}{
		"vda": {false, luks("kairos-oem")}, "vda2": {true, luks("kairos-oem")}, "vda5": {true, luks("kairos-persistent")},
		"vda3": {true, make([]byte, 4096)}, "vdb1": {true, luks("data")}, "vdb2": {true, luks("COS_PERSISTENT")},
	} {
		os.MkdirAll(filepath.Join(sys, name), 0o755)
		if p.partition {
			os.WriteFile(filepath.Join(sys, name, "partition"), []byte("1\n"), 0o644)
		}
		os.WriteFile(filepath.Join(dev, name), p.data, 0o600)
	}
	got, err := Find(sys, dev)
	if err != nil {
		t.Fatal(err)
	}
	want := []Container{{filepath.Join(dev, "vda2"), "COS_OEM"}, {filepath.Join(dev, "vda5"), "COS_PERSISTENT"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Find = %v, want %v", got, want)
	}
	os.MkdirAll(filepath.Join(sys, "sda5"), 0o755)
	os.WriteFile(filepath.Join(sys, "sda5", "partition"), []byte("5\n"), 0o644)
	os.WriteFile(filepath.Join(dev, "sda5"), luks("kairos-persistent"), 0o600)
	if _, err := Find(sys, dev); err == nil || !strings.Contains(err.Error(), "two encrypted partitions labeled COS_PERSISTENT") {
		t.Fatalf("two disks: %v", err)
	}
}

// TestCheckTPM: a TPM 2.0 with its resource manager device passes; none,
// a TPM 1.2 or a missing tpmrm device are ErrNoTPM with the reason.
func TestCheckTPM(t *testing.T) {
	setup := func(version string, rm bool) *Tools {
		sys, dev := t.TempDir(), t.TempDir()
		if version != "" {
			os.MkdirAll(filepath.Join(sys, "class/tpm/tpm0"), 0o755)
			os.WriteFile(filepath.Join(sys, "class/tpm/tpm0/tpm_version_major"), []byte(version+"\n"), 0o644)
		}
		if rm {
			os.WriteFile(filepath.Join(dev, "tpmrm0"), nil, 0o600)
		}
		return &Tools{Sys: sys, Dev: dev}
	}
	if err := setup("2", true).CheckTPM(); err != nil {
		t.Errorf("TPM 2.0: %v", err)
	}
	for name, tc := range map[string]struct {
		tools *Tools
		want  string
	}{
		"none":  {setup("", false), "lists no TPM"},
		"1.2":   {setup("1", true), "not a TPM 2.0"},
		"no rm": {setup("2", false), "no resource manager device"},
	} {
		err := tc.tools.CheckTPM()
		if !errors.Is(err, ErrNoTPM) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrNoTPM with %q", name, err, tc.want)
		}
	}
}

// TestFormatCommands: the tools run in order, the secrets only on stdin
// and fd 3, never in arguments or error messages.
func TestFormatCommands(t *testing.T) {
	var cmds []string
	var stdins []string
	tools := &Tools{Dev: "/dev", Rand: bytes.NewReader(bytes.Repeat([]byte{0xab}, 64)), Exec: func(cmd *exec.Cmd) error {
		cmds = append(cmds, strings.Join(cmd.Args, " "))
		in := ""
		if cmd.Stdin != nil {
			b := new(bytes.Buffer)
			b.ReadFrom(cmd.Stdin)
			in = b.String()
		}
		if len(cmd.ExtraFiles) > 0 {
			b := new(bytes.Buffer)
			b.ReadFrom(cmd.ExtraFiles[0])
			in += "|fd3=" + b.String()
		}
		stdins = append(stdins, in)
		return nil
	}}
	got, err := tools.Format(context.Background(), "/dev/vda5", "COS_PERSISTENT", Options{Recovery: []byte("recovery words")})
	if err != nil {
		t.Fatal(err)
	}
	if got != "/dev/mapper/kairos-persistent" {
		t.Errorf("opened device %s", got)
	}
	key := strings.Repeat("ab", 32)
	want := []string{
		"cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --label kairos-persistent --key-file - /dev/vda5",
		"systemd-cryptenroll --unlock-key-file=/proc/self/fd/3 --tpm2-device=auto --tpm2-pcrs=7 /dev/vda5",
		"cryptsetup luksAddKey --batch-mode --key-file - /dev/vda5 /proc/self/fd/3",
		"cryptsetup open --key-file - /dev/vda5 kairos-persistent",
		"cryptsetup luksKillSlot --batch-mode /dev/vda5 0",
	}
	wantIn := []string{key, "|fd3=" + key, key + "|fd3=recovery words", key, ""}
	if strings.Join(cmds, "\n") != strings.Join(want, "\n") {
		t.Fatalf("commands:\n%s\nwant:\n%s", strings.Join(cmds, "\n"), strings.Join(want, "\n"))
	}
	for i := range wantIn {
		if stdins[i] != wantIn[i] {
			t.Errorf("%s: input %q, want %q", want[i], stdins[i], wantIn[i])
		}
	}

	// A failing tool: the error names it, not the key.
	tools.Rand = bytes.NewReader(bytes.Repeat([]byte{0xab}, 64))
	tools.Exec = func(cmd *exec.Cmd) error {
		if strings.Contains(cmd.Args[0], "cryptenroll") {
			return errors.New("exit status 1")
		}
		return nil
	}
	_, err = tools.Format(context.Background(), "/dev/vda5", "COS_PERSISTENT", Options{})
	if err == nil || !strings.Contains(err.Error(), "sealing COS_PERSISTENT's key to the TPM") || strings.Contains(err.Error(), key) {
		t.Fatalf("error %v", err)
	}
}
