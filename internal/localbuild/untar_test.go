package localbuild

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func tarOf(t *testing.T, entries ...*tar.Header) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(tarContent[h.Name][:h.Size]); err != nil {
				t.Fatal(err)
			}
		}
	}
	tw.Close()
	return &buf
}

var tarContent = map[string][]byte{}

// A disk image with 8 MiB of zeros around a few bytes arrives with its
// zeros as holes, its content and mode as exported; a small file is
// written whole.
func TestExtractSparse(t *testing.T) {
	disk := make([]byte, 8<<20)
	copy(disk[1<<20:], "data at 1 MiB")
	copy(disk[len(disk)-10:], "tail bytes")
	tarContent["kairos.raw"] = disk
	zerosAtEnd := make([]byte, 1<<20)
	copy(zerosAtEnd, "head")
	tarContent["sub/ends-in-zeros.img"] = zerosAtEnd
	tarContent["kairos.iso.sha256"] = []byte("abc  kairos.iso\n")
	mtime := time.Unix(1700000000, 0)
	dir := t.TempDir()
	files, err := extract(tarOf(t,
		&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "kairos.raw", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(disk)), ModTime: mtime},
		&tar.Header{Name: "sub/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "sub/ends-in-zeros.img", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(zerosAtEnd))},
		&tar.Header{Name: "kairos.iso.sha256", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(tarContent["kairos.iso.sha256"]))},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Errorf("files %v", files)
	}
	for name, want := range tarContent {
		p := filepath.Join(dir, name)
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: content differs (%v)", name, err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "kairos.raw"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("kairos.raw allocates %d bytes of its 8 MiB: its zeros were written", st.Blocks*512)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "kairos.raw")); !fi.ModTime().Equal(mtime) || fi.Mode().Perm() != 0o644 {
		t.Errorf("kairos.raw: mode %v, time %v", fi.Mode(), fi.ModTime())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.partial")); len(leftovers) > 0 {
		t.Errorf("partial files left: %v", leftovers)
	}
}

// What the artifacts may not hold: paths outside the output directory,
// links, devices; a truncated stream leaves no file under its name.
func TestExtractRefuses(t *testing.T) {
	tarContent["x"] = []byte("hello")
	for _, h := range []*tar.Header{
		{Name: "../escape", Typeflag: tar.TypeReg, Size: 0},
		{Name: "/abs/../../etc/passwd", Typeflag: tar.TypeReg, Size: 0},
		{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"},
		{Name: "hard", Typeflag: tar.TypeLink, Linkname: "x"},
		{Name: "dev", Typeflag: tar.TypeChar},
	} {
		dir := t.TempDir()
		if _, err := extract(tarOf(t, h), dir); err == nil {
			t.Errorf("%s (%c) extracted", h.Name, h.Typeflag)
		}
	}
	dir := t.TempDir()
	full := tarOf(t, &tar.Header{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5})
	cut := bytes.NewBuffer(full.Bytes()[:512+2])
	if _, err := extract(cut, dir); err == nil || !strings.Contains(err.Error(), "x") {
		t.Errorf("a truncated stream: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a truncated file was left: %v", entries)
	}
}

// Through the pipe, as the exporter writes: the archive and its padding
// are read to the end (the writer never sees a closed pipe), and an
// archive that cannot be extracted fails the writer.
func TestReceive(t *testing.T) {
	tarContent["y"], tarContent["../y"] = []byte("hello"), []byte("hello")
	for _, c := range []struct {
		h  *tar.Header
		ok bool
	}{
		{&tar.Header{Name: "y", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5}, true},
		{&tar.Header{Name: "../y", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5}, false},
	} {
		data := append(tarOf(t, c.h).Bytes(), make([]byte, 10240)...)
		pr, pw := io.Pipe()
		werr := make(chan error, 1)
		go func() {
			_, err := pw.Write(data)
			pw.Close()
			werr <- err
		}()
		files, err := receive(pr, t.TempDir())
		if c.ok && (err != nil || len(files) != 1 || <-werr != nil) {
			t.Errorf("%s: files %v, %v", c.h.Name, files, err)
		}
		if !c.ok && (err == nil || <-werr == nil) {
			t.Errorf("%s: extracted, or the writer was not told", c.h.Name)
		}
	}
}
