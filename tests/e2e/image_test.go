//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/klauspost/compress/zstd"
)

// TestImageArchive checks that +image's OCI archive is readable by skopeo,
// carries the Kairos labels, and matches its checksum file.
func TestImageArchive(t *testing.T) {
	archive := buildImage(t).archive
	out, err := exec.Command("skopeo", "inspect", "oci-archive:"+archive).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	var info struct {
		Architecture string
		Os           string
		Labels       map[string]string
		Layers       []string
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("skopeo output: %v\n%s", err, out)
	}
	if info.Architecture != "amd64" || info.Os != "linux" {
		t.Errorf("platform %s/%s, want linux/amd64", info.Os, info.Architecture)
	}
	want := map[string]string{"io.kairos.flavor": "debian", "io.kairos.variant": "core", "io.kairos.targetarch": "amd64", "io.kairos.release": e2eVersion}
	for k, v := range want {
		if info.Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, info.Labels[k], v)
		}
	}
	if len(info.Layers) == 0 {
		t.Error("image has no layers")
	}
	verifyChecksum(t, archive)

	// No layer records the build's day: /etc/shadow's last password
	// change is empty (a rebuild on another day gives the same layers).
	for i, layer := range ociArchive(t, archive).layers {
		for _, name := range []string{"etc/shadow", "etc/shadow-"} {
			data, ok := layerFile(t, archive, layer, name)
			if !ok {
				continue
			}
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				if f := strings.Split(line, ":"); len(f) > 2 && f[2] != "" {
					t.Errorf("layer %d %s records a day: %s:...:%s:", i, name, f[0], f[2])
				}
			}
		}
	}

	// No account of the image can log in: the live user kairos gets its
	// password on live media only, at boot (/system/oem/10_live.yaml).
	files := map[string][]byte{} // the last layer's version of each file
	links := map[string]string{}
	for _, layer := range ociArchive(t, archive).layers {
		tr := layerTar(t, archive, layer)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			must(t, err)
			name := path.Clean("/" + hdr.Name)
			if hdr.Typeflag == tar.TypeReg && (strings.HasPrefix(name, "/etc/sudoers") || strings.HasPrefix(name, "/etc/ssh/sshd_config") || name == "/etc/shadow" ||
				name == "/usr/bin/kairos-p2p" || strings.HasPrefix(name, "/boot/initrd") || name == "/usr/lib/kairos/boot/initrd-network") {
				files[name], err = io.ReadAll(tr)
				must(t, err)
			}
			if hdr.Typeflag == tar.TypeSymlink && name == "/boot/initrd" {
				links[name] = path.Join("/boot", hdr.Linkname)
			}
		}
	}
	for _, line := range strings.Split(string(files["/etc/shadow"]), "\n") {
		if f := strings.Split(line, ":"); len(f) > 1 && f[1] != "" && !strings.HasPrefix(f[1], "!") && f[1] != "*" {
			t.Errorf("/etc/shadow: account %s has a password (%.3s...): installed nodes would accept it", f[0], f[1])
		}
	}
	for p, data := range files {
		if strings.HasPrefix(p, "/etc/sudoers") && regexp.MustCompile(`(?m)^\s*kairos\s`).Match(data) {
			t.Errorf("%s grants the image's own user kairos sudo:\n%s", p, data)
		}
	}
	if sshd := string(files["/etc/ssh/sshd_config.d/40-kairos.conf"]); !strings.Contains(sshd, "PasswordAuthentication no") {
		t.Errorf("sshd drop-in 40-kairos.conf = %q, want password logins off", sshd)
	}

	// The mesh's program is in the image, the one built with the agent.
	mesh := filepath.Join(t.TempDir(), "kairos-p2p")
	must(t, os.WriteFile(mesh, files["/usr/bin/kairos-p2p"], 0o755))
	if out := run(t, mesh, "version"); strings.TrimSpace(out) != e2eVersion {
		t.Errorf("/usr/bin/kairos-p2p version %q, want %q", strings.TrimSpace(out), e2eVersion)
	}
	// The initrd carries the agent (its /init) but neither the mesh nor
	// udev's hardware database, which no boot step reads.
	initrd := "/boot/initrd"
	if l, ok := links[initrd]; ok {
		initrd = l
	}
	names, unpacked := initrdFiles(t, files[initrd])
	t.Logf("%s: %.1f MB, %.1f MB unpacked, %d entries", initrd, float64(len(files[initrd]))/1e6, float64(unpacked)/1e6, len(names))
	if !names["usr/bin/kairos-agent"] {
		t.Errorf("the initrd lacks usr/bin/kairos-agent")
	}
	for _, n := range []string{"usr/bin/kairos-p2p", "usr/lib/udev/hwdb.bin", "etc/udev/hwdb.bin"} {
		if names[n] {
			t.Errorf("the initrd carries %s", n)
		}
	}
	// Local boots need no network in the initramfs: NIC drivers and the
	// DHCP client are in the network part, which only the netboot initrd
	// appends (TestNetboot boots it).
	network, _ := initrdFiles(t, files["/usr/lib/kairos/boot/initrd-network"])
	t.Logf("/usr/lib/kairos/boot/initrd-network: %.1f MB, %d entries", float64(len(files["/usr/lib/kairos/boot/initrd-network"]))/1e6, len(network))
	find := func(set map[string]bool, part string) string {
		for n := range set {
			if strings.Contains(n, part) {
				return n
			}
		}
		return ""
	}
	for _, part := range []string{"/drivers/net/ethernet/", "/virtio_net.ko", "usr/sbin/dhclient", "livenet"} {
		if n := find(names, part); n != "" {
			t.Errorf("the initrd carries %s, which only a network boot needs", n)
		}
		if find(network, part) == "" {
			t.Errorf("the initrd's network part lacks %s", part)
		}
	}
	if find(names, "/virtio_blk.ko") == "" || find(names, "/ext4.ko") == "" {
		t.Error("the initrd lacks virtio_blk or ext4")
	}
}

// initrdFiles lists a dracut initrd's entries (an uncompressed early
// cpio, if any, then a zstd-compressed one) and the bytes unpacked.
func initrdFiles(t *testing.T, data []byte) (map[string]bool, int) {
	t.Helper()
	names := map[string]bool{}
	unpacked := 0
	for len(data) > 0 {
		if bytes.HasPrefix(data, []byte("070701")) {
			n := cpioNames(t, data, names)
			unpacked += n
			data = bytes.TrimLeft(data[n:], "\x00")
			continue
		}
		zr, err := zstd.NewReader(bytes.NewReader(data))
		must(t, err)
		plain, err := io.ReadAll(zr)
		zr.Close()
		must(t, err)
		unpacked += len(plain)
		for len(plain) > 0 && bytes.HasPrefix(plain, []byte("070701")) {
			n := cpioNames(t, plain, names)
			plain = bytes.TrimLeft(plain[n:], "\x00")
		}
		break
	}
	return names, unpacked
}

// cpioNames reads one newc cpio archive up to its trailer into names and
// returns its length.
func cpioNames(t *testing.T, data []byte, names map[string]bool) int {
	t.Helper()
	off := 0
	pad := func(n int) int { return (n + 3) &^ 3 }
	for {
		if off+110 > len(data) || string(data[off:off+6]) != "070701" {
			t.Fatalf("initrd: no cpio header at %d", off)
		}
		var size, nameSize int
		fmt.Sscanf(string(data[off+54:off+62]), "%08x", &size)
		fmt.Sscanf(string(data[off+94:off+102]), "%08x", &nameSize)
		if nameSize < 1 || off+110+nameSize > len(data) {
			t.Fatalf("initrd: bad cpio name size %d at %d", nameSize, off)
		}
		name := string(data[off+110 : off+110+nameSize-1])
		off = pad(off+110+nameSize) + size
		off = pad(off)
		if name == "TRAILER!!!" {
			return min(off, len(data))
		}
		names[strings.TrimPrefix(path.Clean("/"+name), "/")] = true
	}
}

func verifyChecksum(t *testing.T, file string) {
	t.Helper()
	line, err := os.ReadFile(file + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(line))
	if len(fields) != 2 || fields[1] != filepath.Base(file) {
		t.Fatalf("%s.sha256 = %q, want \"<hex>  %s\"", file, line, filepath.Base(file))
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != fields[0] {
		t.Errorf("%s: sha256 %s, checksum file says %s", file, got, fields[0])
	}
}

// TestImageReproducible rebuilds the e2e image with every step run again
// (--no-cache) and the same SOURCE_DATE_EPOCH: the manifest digest must be
// the same. On a mismatch it names the files that differ.
func TestImageReproducible(t *testing.T) {
	slow(t)
	archive := buildImage(t).archive
	b := buildTools(t)
	out := t.TempDir()
	run(t, b.kairos, "build", "--flavor", "debian", "--version", e2eVersion,
		"--agent", b.agent, "--output", out, "--progress", "plain", "--target", "image", "--no-cache")
	again := filepath.Join(out, filepath.Base(archive))
	first, second := ociArchive(t, archive), ociArchive(t, again)
	if first.manifest == second.manifest {
		return
	}
	t.Errorf("rebuilding the image gave manifest %s, the first build %s", second.manifest, first.manifest)
	for i := range min(len(first.layers), len(second.layers)) {
		if first.layers[i] != second.layers[i] {
			t.Errorf("layer %d differs: %s", i, diffLayers(t, archive, first.layers[i], again, second.layers[i]))
		}
	}
}

type archiveInfo struct {
	manifest string
	layers   []string
}

// ociArchive reads the manifest digest and layer digests of a one-image
// OCI archive.
func ociArchive(t *testing.T, path string) archiveInfo {
	t.Helper()
	index := readMember(t, path, "index.json")
	var idx struct {
		Manifests []struct{ Digest string }
	}
	must(t, json.Unmarshal(index, &idx))
	if len(idx.Manifests) != 1 {
		t.Fatalf("%s: %d manifests, want 1", path, len(idx.Manifests))
	}
	info := archiveInfo{manifest: idx.Manifests[0].Digest}
	var man struct {
		Layers []struct{ Digest string }
	}
	must(t, json.Unmarshal(readMember(t, path, blobPath(info.manifest)), &man))
	for _, l := range man.Layers {
		info.layers = append(info.layers, l.Digest)
	}
	return info
}

func blobPath(digest string) string { return "blobs/" + strings.Replace(digest, ":", "/", 1) }

// readMember returns one file of a tar archive.
func readMember(t *testing.T, archive, name string) []byte {
	t.Helper()
	f, err := os.Open(archive)
	must(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s has no %s", archive, name)
		}
		must(t, err)
		if strings.TrimPrefix(hdr.Name, "./") == name {
			data, err := io.ReadAll(tr)
			must(t, err)
			return data
		}
	}
}

// diffLayers lists the paths whose content or metadata differ between two
// layers (gzip tars), at most 20.
func diffLayers(t *testing.T, archiveA, layerA, archiveB, layerB string) string {
	t.Helper()
	a, b := layerFiles(t, archiveA, layerA), layerFiles(t, archiveB, layerB)
	var diffs []string
	for name, sum := range a {
		if b[name] != sum {
			diffs = append(diffs, name)
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			diffs = append(diffs, name+" (only in the rebuild)")
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 20 {
		diffs = append(diffs[:20], "...")
	}
	return strings.Join(diffs, ", ")
}

// imageFiles walks the flattened file system of img (paths without a
// leading slash): the contents of the regular files keep selects, the
// targets of all symlinks, and every path seen.
func imageFiles(t *testing.T, img v1.Image, keep func(name string) bool) (files map[string][]byte, links map[string]string, seen map[string]bool) {
	t.Helper()
	files, links, seen = map[string][]byte{}, map[string]string{}, map[string]bool{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, links, seen
		}
		must(t, err)
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		seen[name] = true
		switch {
		case hdr.Typeflag == tar.TypeSymlink:
			links[name] = hdr.Linkname
		case hdr.Typeflag == tar.TypeReg && keep(name):
			files[name], err = io.ReadAll(tr)
			must(t, err)
		}
	}
}

// layerTar reads a layer (a gzip tar) of an OCI archive.
func layerTar(t *testing.T, archive, layer string) *tar.Reader {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(readMember(t, archive, blobPath(layer))))
	must(t, err)
	return tar.NewReader(zr)
}

// layerFile returns one file of a layer (a gzip tar), if the layer has it.
func layerFile(t *testing.T, archive, layer, name string) ([]byte, bool) {
	t.Helper()
	tr := layerTar(t, archive, layer)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, false
		}
		must(t, err)
		if strings.TrimPrefix(hdr.Name, "./") == name {
			data, err := io.ReadAll(tr)
			must(t, err)
			return data, true
		}
	}
}

func layerFiles(t *testing.T, archive, layer string) map[string]string {
	t.Helper()
	tr := layerTar(t, archive, layer)
	out := map[string]string{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		must(t, err)
		h := sha256.New()
		io.Copy(h, tr)
		out[hdr.Name] = fmt.Sprintf("%o %d:%d %d %s %x", hdr.Mode, hdr.Uid, hdr.Gid, hdr.ModTime.Unix(), hdr.Linkname, h.Sum(nil))
	}
}

// TestImageContainer runs the image as a container, as `docker run -ti
// <image>` would, without a Docker daemon: umoci unpacks the OCI archive
// into a runtime bundle from the image's config, and runc runs its default
// command, a shell, which reads /etc/kairos-release from inside.
func TestImageContainer(t *testing.T) {
	archive := buildImage(t).archive
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	run(t, "skopeo", "copy", "-q", "oci-archive:"+archive, "oci:"+layout+":kairos")
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--image", layout+":kairos", bundle)
	cfgPath := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(cfgPath)
	must(t, err)
	var cfg map[string]any
	must(t, json.Unmarshal(data, &cfg))
	process := cfg["process"].(map[string]any)
	if args, _ := json.Marshal(process["args"]); string(args) != `["/bin/sh"]` {
		t.Errorf("the container's command is %s, want a shell", args)
	}
	// No terminal here: the shell reads its commands from stdin.
	process["terminal"] = false
	data, err = json.Marshal(cfg)
	must(t, err)
	must(t, os.WriteFile(cfgPath, data, 0o644))
	id := fmt.Sprintf("kairos-e2e-%d", os.Getpid())
	cmd := exec.Command("runc", "run", "--bundle", bundle, id)
	cmd.Stdin = strings.NewReader("cat /etc/kairos-release; uname -s\n")
	out, err := cmd.CombinedOutput()
	exec.Command("runc", "delete", "--force", id).Run()
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	for _, want := range []string{`KAIROS_FLAVOR="debian"`, `KAIROS_VERSION="` + e2eVersion + `"`, "Linux"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the container's shell printed no %s:\n%s", want, out)
		}
	}
}
