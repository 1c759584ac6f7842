package cloudconfig

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDatasourcesURLThenCIDATA(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/config.yaml":
			w.Write([]byte("#cloud-config\nhostname: from-url\nk3s:\n  enabled: true\n"))
		case "/script":
			w.Write([]byte("#!/bin/sh\necho hi\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	root := t.TempDir()
	vol := filepath.Join(t.TempDir(), "volume")
	os.MkdirAll(vol, 0o755)
	os.WriteFile(filepath.Join(vol, "user-data"), []byte("#cloud-config\nhostname: from-cidata\ninstall:\n  auto: true\n"), 0o644)
	byLabel := t.TempDir()
	os.Symlink(vol, filepath.Join(byLabel, "CIDATA"))
	var mounted []string
	d := Datasources{
		Root: root, ByLabel: byLabel,
		Cmdline: "console=ttyS0 kairos.config_url=" + srv.URL + "/config.yaml quiet",
		// The volume is a directory here: "mounting" copies its file in.
		Mount:   dirMount(&mounted),
		Unmount: dirUnmount,
	}
	files, err := d.Fetch(context.Background())
	if err != nil || len(files) != 2 || len(mounted) != 1 {
		t.Fatalf("files %v mounted %v err %v", files, mounted, err)
	}
	m := Load(root)
	if h, _ := m.Get("hostname"); h != "from-cidata" {
		t.Errorf("hostname %v: CIDATA must win over config_url", h)
	}
	if v, _ := m.Get("k3s.enabled"); v != true {
		t.Errorf("k3s.enabled %v from config_url lost", v)
	}
	if v, _ := m.Get("install.auto"); v != true {
		t.Errorf("install.auto %v", v)
	}

	// A URL that is not a cloud-config, or missing, is an error naming it;
	// no CIDATA volume is not.
	for path, want := range map[string]string{"/script": "is not a cloud-config", "/missing": "404"} {
		d := Datasources{Root: t.TempDir(), ByLabel: t.TempDir(), Cmdline: "config_url=" + srv.URL + path}
		files, err := d.Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), srv.URL+path) || len(files) != 0 {
			t.Errorf("%s: files %v err %v", path, files, err)
		}
	}
	if ConfigURL("a config_url=http://x/y b") != "http://x/y" || ConfigURL("quiet") != "" {
		t.Error("ConfigURL")
	}
}

// A config_url body over the limit is refused, naming the URL and the
// limit, rather than cut and used; one at the limit is taken whole.
func TestConfigURLSizeLimit(t *testing.T) {
	const limit = 16 << 20
	body := func(n int) []byte {
		b := bytes.Repeat([]byte("#\n"), n/2)
		copy(b, "#cloud-config\n")
		return b
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/at-limit":
			w.Write(body(limit))
		case "/over-limit":
			w.Write(body(limit + 2))
		}
	}))
	defer srv.Close()

	root := t.TempDir()
	d := Datasources{Root: root, ByLabel: t.TempDir(), Cmdline: "config_url=" + srv.URL + "/over-limit"}
	files, err := d.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/over-limit") || !strings.Contains(err.Error(), "16 MiB") || len(files) != 0 {
		t.Errorf("over the limit: files %v err %v", files, err)
	}
	if _, err := os.Stat(filepath.Join(root, DatasourceDir, urlFile)); !os.IsNotExist(err) {
		t.Errorf("a config over the limit was written: %v", err)
	}

	d.Cmdline = "config_url=" + srv.URL + "/at-limit"
	if files, err := d.Fetch(context.Background()); err != nil || len(files) != 1 {
		t.Fatalf("at the limit: files %v err %v", files, err)
	}
	if st, err := os.Stat(filepath.Join(root, DatasourceDir, urlFile)); err != nil || st.Size() != limit {
		t.Errorf("the config at the limit: %v, %v", st, err)
	}
}

// config_url inside a config chains: the node's own file names a config,
// which names another; each lands after the one naming it (the remote
// wins); a chain coming back to a URL it fetched is refused.
func TestConfigURLChain(t *testing.T) {
	var srvURL string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a.yaml":
			w.Write([]byte("#cloud-config\nhostname: from-a\nconfig_url: " + srvURL + "/b.yaml\n"))
		case "/b.yaml":
			w.Write([]byte("#cloud-config\nhostname: from-b\nconfig_url: " + srvURL + "/a.yaml\nk3s: {enabled: true}\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	srvURL = srv.URL
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "oem"), 0o755)
	os.WriteFile(filepath.Join(root, "oem", "90_custom.yaml"), []byte("#cloud-config\nhostname: local\nconfig_url: "+srv.URL+"/a.yaml\n"), 0o644)
	files, err := Datasources{Root: root, ByLabel: t.TempDir()}.Fetch(context.Background())
	if len(files) != 2 || err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("files %v, err %v", files, err)
	}
	if filepath.Base(files[0]) != "30_4_90_custom_1.yaml" || filepath.Base(files[1]) != "30_4_90_custom_1_2.yaml" {
		t.Errorf("names %v", files)
	}
	m := Load(root)
	if h, _ := m.Get("hostname"); h != "from-b" {
		t.Errorf("hostname %v: the end of the chain wins", h)
	}
	if !m.Config().K3s.Enabled {
		t.Error("k3s from the chain lost")
	}
}

// Credentials in a config URL stay out of messages; https never
// redirects to http.
func TestURLRedactAndNoDowngrade(t *testing.T) {
	if got := Redact("https://user:secret@example.com/c.yaml?token=abc"); strings.Contains(got, "secret") || strings.Contains(got, "abc") {
		t.Errorf("redacted %q", got)
	}
	https, _ := http.NewRequest("GET", "https://example.com/a", nil)
	plain, _ := http.NewRequest("GET", "http://example.com/b", nil)
	if NoDowngrade(plain, []*http.Request{https}) == nil {
		t.Error("https -> http redirect allowed")
	}
	if NoDowngrade(https, []*http.Request{plain}) != nil {
		t.Error("http -> https redirect refused")
	}
}

// A CIDATA volume is anyone's: its user-data may not be a link (to
// /dev/zero, to a file of the node).
func TestCIDATALinkRefused(t *testing.T) {
	byLabel := t.TempDir()
	os.Symlink(t.TempDir(), filepath.Join(byLabel, "CIDATA"))
	d := Datasources{Root: t.TempDir(), ByLabel: byLabel,
		Mount:   func(dev, dir string) error { return os.Symlink("/dev/zero", filepath.Join(dir, "user-data")) },
		Unmount: func(dir string) error { return os.Remove(filepath.Join(dir, "user-data")) },
	}
	if _, err := d.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("linked user-data: %v", err)
	}
}

// A config_url that does not answer (no network yet) is retried, and each
// retry says why the boot waits; neither the log nor the error carries
// the URL's credentials or query (a token).
func TestConfigURLRetriesSayWhy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // connection refused from now on
	var log bytes.Buffer
	d := Datasources{Root: t.TempDir(), ByLabel: t.TempDir(), Log: &log,
		Cmdline: "config_url=http://user:s3cret@" + addr + "/c.yaml?token=s3cret"}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	_, err = d.Fetch(ctx)
	if err == nil {
		t.Fatal("an unreachable config_url succeeded")
	}
	out := log.String()
	if !strings.Contains(out, "attempt 1 of 10 failed") || !strings.Contains(out, "connection refused") || !strings.Contains(out, "is the network up?") {
		t.Errorf("retry log:\n%s", out)
	}
	if strings.Contains(out+err.Error(), "s3cret") {
		t.Errorf("a secret of the URL was logged:\n%s\n%v", out, err)
	}
}

// Volumes found by their superblocks take the place of udev's links: a
// CIDATA volume in them is read, udev's directory is not consulted.
func TestDatasourcesVolumes(t *testing.T) {
	vol := filepath.Join(t.TempDir(), "volume")
	os.MkdirAll(vol, 0o755)
	os.WriteFile(filepath.Join(vol, "user-data"), []byte("#cloud-config\nhostname: from-volumes\n"), 0o644)
	var mounted []string
	d := Datasources{
		Root: t.TempDir(), ByLabel: "/nonexistent", Volumes: map[string]string{"cidata": vol, "COS_OEM": "/dev/vda3"},
		Mount:   dirMount(&mounted),
		Unmount: dirUnmount,
	}
	files, err := d.Fetch(context.Background())
	if err != nil || len(files) != 1 || len(mounted) != 1 || mounted[0] != vol {
		t.Fatalf("files %v mounted %v err %v", files, mounted, err)
	}
	if h, _ := Load(d.Root).Get("hostname"); h != "from-volumes" {
		t.Errorf("hostname %v", h)
	}
	// No CIDATA among the volumes: nothing, and no error.
	d.Volumes = map[string]string{"COS_OEM": "/dev/vda3"}
	mounted = nil
	if files, err := d.Fetch(context.Background()); err != nil || len(files) != 0 || len(mounted) != 0 {
		t.Errorf("without CIDATA: files %v mounted %v err %v", files, mounted, err)
	}
}

// dirMount "mounts" a volume that is a directory by copying its user-data
// in, recording the device.
func dirMount(mounted *[]string) func(dev, dir string) error {
	return func(dev, dir string) error {
		*mounted = append(*mounted, dev)
		data, err := os.ReadFile(filepath.Join(dev, "user-data"))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "user-data"), data, 0o644)
	}
}

func dirUnmount(dir string) error { return os.Remove(filepath.Join(dir, "user-data")) }
