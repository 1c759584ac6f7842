package cloudconfig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DatasourceDir holds the configs fetched at boot from outside the disk:
// the kernel command line's config_url, then a NoCloud CIDATA volume
// (file names sort in that order, later wins).
const DatasourceDir = "/run/kairos/datasource"

const (
	urlFile    = "10_config_url.yaml"
	cidataFile = "20_cidata.yaml"
)

// MaxConfigURLSize bounds a config_url body: a cloud-config is a few KiB,
// and a bigger body (the wrong URL, an image) must not fill /run.
const MaxConfigURLSize = 16 << 20

// Datasources fetches what the node's datasources hold into DatasourceDir
// below root. Every source that is absent is skipped; one that is present
// but fails is reported, the others still run.
type Datasources struct {
	Root    string // "/" on a node
	Cmdline string
	// ByLabel is where udev names volumes (/dev/disk/by-label).
	ByLabel string
	// Volumes, when set, are the volumes by label (read from their
	// superblocks at boot, without waiting for udev); ByLabel is not
	// consulted then.
	Volumes map[string]string
	Client  *http.Client
	// Mount and Unmount attach a volume read-only (unix.Mount by default).
	Mount   func(dev, dir string) error
	Unmount func(dir string) error
	Log     io.Writer
}

// Fetch runs every datasource and returns the files written.
func (d Datasources) Fetch(ctx context.Context) ([]string, error) {
	dir := filepath.Join(d.Root, DatasourceDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var written []string
	var errs []error
	if url := ConfigURL(d.Cmdline); url != "" {
		if err := d.fetchURL(ctx, url, filepath.Join(dir, urlFile)); err != nil {
			errs = append(errs, fmt.Errorf("config_url %s: %w", Redact(url), err))
		} else {
			written = append(written, filepath.Join(dir, urlFile))
		}
	}
	ok, err := d.fetchCIDATA(filepath.Join(dir, cidataFile))
	if err != nil {
		errs = append(errs, fmt.Errorf("CIDATA: %w", err))
	} else if ok {
		written = append(written, filepath.Join(dir, cidataFile))
	}
	// A config's own config_url chains: what it names is fetched and
	// merged after it (the remote wins, as upstream), and so on.
	chained, err := d.followConfigURLs(ctx, dir, written)
	written = append(written, chained...)
	if err != nil {
		errs = append(errs, err)
	}
	return written, errors.Join(errs...)
}

// MaxConfigURLDepth bounds a chain of config_url: a config naming a
// config naming a config... A chain that comes back to a URL it fetched
// is a loop, refused.
const MaxConfigURLDepth = 5

// followConfigURLs fetches the config_url of the node's own configs and
// of the fetched ones, transitively. Each link is stored after the file
// that named it: <file>_<n>.yaml in the datasource directory, which is
// read last, so a remote config wins over the one that names it.
func (d Datasources) followConfigURLs(ctx context.Context, dir string, fetched []string) ([]string, error) {
	type link struct {
		file, url string
		depth     int
		seen      []string
	}
	var queue []link
	add := func(file string, depth int, seen []string) {
		data, err := os.ReadFile(file)
		if err != nil || !HasHeader(data) {
			return
		}
		parsed, diags := Parse(file, data)
		if diags.Err() != nil || parsed.Config.ConfigURL == "" {
			return
		}
		queue = append(queue, link{file: file, url: parsed.Config.ConfigURL, depth: depth, seen: seen})
	}
	for _, sd := range SourceDirs {
		if sd == DatasourceDir {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(d.Root, sd, "*.y*ml"))
		slices.Sort(files)
		for _, f := range files {
			add(f, 1, nil)
		}
	}
	for _, f := range fetched {
		// The command line's URL was fetched already: a chain starts there.
		seen := []string{}
		if filepath.Base(f) == urlFile {
			seen = append(seen, ConfigURL(d.Cmdline))
		}
		add(f, 1, seen)
	}
	var written []string
	var errs []error
	n := 0
	for len(queue) > 0 {
		l := queue[0]
		queue = queue[1:]
		switch {
		case slices.Contains(l.seen, l.url):
			errs = append(errs, fmt.Errorf("config_url %s in %s: a loop (already fetched in this chain), not followed", Redact(l.url), l.file))
			continue
		case l.depth > MaxConfigURLDepth:
			errs = append(errs, fmt.Errorf("config_url %s in %s: more than %d configs chained, not followed", Redact(l.url), l.file, MaxConfigURLDepth))
			continue
		}
		n++
		base := strings.TrimSuffix(filepath.Base(l.file), filepath.Ext(l.file))
		if filepath.Dir(l.file) != dir {
			// A node's own file: its chain after the datasources, named
			// after its directory too (/oem/90.yaml and
			// /usr/local/cloud-config/90.yaml are two chains).
			for i, sd := range SourceDirs {
				if filepath.Dir(l.file) == filepath.Join(d.Root, sd) {
					base = fmt.Sprintf("30_%d_%s", i, base)
				}
			}
		}
		dst := filepath.Join(dir, fmt.Sprintf("%s_%d.yaml", base, l.depth))
		if err := d.fetchURL(ctx, l.url, dst); err != nil {
			errs = append(errs, fmt.Errorf("config_url %s in %s: %w", Redact(l.url), l.file, err))
			continue
		}
		written = append(written, dst)
		add(dst, l.depth+1, append(slices.Clone(l.seen), l.url))
	}
	return written, errors.Join(errs...)
}

// ConfigURL is the config_url= (or kairos.config_url=) of a command line.
func ConfigURL(cmdline string) string {
	for _, w := range strings.Fields(cmdline) {
		for _, k := range []string{"kairos.config_url=", "config_url="} {
			if v, ok := strings.CutPrefix(w, k); ok {
				return v
			}
		}
	}
	return ""
}

// fetchURL downloads a config, retrying while the network comes up.
func (d Datasources) fetchURL(ctx context.Context, url, dst string) error {
	client := d.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second, CheckRedirect: NoDowngrade}
	}
	var last error
	for attempt := range 10 {
		if attempt > 0 {
			// Said on every retry: a node without network shows why its
			// boot waits here, and for how long.
			if d.Log != nil {
				fmt.Fprintf(d.Log, "kairos-agent datasource: config_url %s: attempt %d of 10 failed (%v); retrying in %ds (is the network up?)\n",
					Redact(url), attempt, last, attempt)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			// The client's error quotes the URL, credentials and query
			// (a token) included: keep only what went wrong.
			var ue *neturl.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			last = err
			continue
		}
		// One byte over the limit tells a body that is too big from one
		// that is exactly at it: cut, it would be used as if whole.
		data, err := io.ReadAll(io.LimitReader(resp.Body, MaxConfigURLSize+1))
		resp.Body.Close()
		if err != nil {
			last = err
			continue
		}
		if resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("HTTP %s", resp.Status)
			if resp.StatusCode >= 400 && resp.StatusCode < 500 {
				return last
			}
			continue
		}
		if len(data) > MaxConfigURLSize {
			return fmt.Errorf("the body is larger than the %d MiB a cloud-config may be: not used", MaxConfigURLSize>>20)
		}
		return writeConfig(dst, data, Redact(url))
	}
	return last
}

// fetchCIDATA reads user-data from a volume labelled CIDATA (or cidata).
func (d Datasources) fetchCIDATA(dst string) (bool, error) {
	data, from, err := d.readVolume([]string{"CIDATA", "cidata"}, []string{"user-data"})
	if errors.Is(err, errNoData) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, writeConfig(dst, data, from)
}

// readVolume reads the first of files from the first volume labelled one
// of labels, mounted read-only; errNoData when there is none.
func (d Datasources) readVolume(labels, files []string) ([]byte, string, error) {
	var dev string
	for _, l := range labels {
		if d.Volumes != nil {
			if p, ok := d.Volumes[l]; ok {
				dev = p
				break
			}
			continue
		}
		if d.ByLabel == "" {
			break
		}
		p := filepath.Join(d.ByLabel, l)
		if _, err := os.Stat(p); err == nil {
			dev = p
			break
		}
	}
	if dev == "" {
		return nil, "", errNoData
	}
	mnt, err := os.MkdirTemp("", "kairos-cidata-")
	if err != nil {
		return nil, "", err
	}
	defer os.Remove(mnt)
	mount, unmount := d.Mount, d.Unmount
	if mount == nil {
		mount = mountReadOnly
	}
	if unmount == nil {
		unmount = func(dir string) error { return unix.Unmount(dir, 0) }
	}
	if err := mount(dev, mnt); err != nil {
		return nil, "", fmt.Errorf("mounting %s: %w", dev, err)
	}
	defer unmount(mnt)
	// The volume is anyone's: user data is read as a regular file only
	// (not a link to /dev/zero) and no more than a config may be.
	var f *os.File
	var name string
	for _, name = range files {
		if f, err = os.OpenFile(filepath.Join(mnt, name), os.O_RDONLY|unix.O_NOFOLLOW, 0); err == nil || !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", errNoData // a volume without user data (a config drive may have none)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", dev, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, "", fmt.Errorf("%s: %s is not a regular file", dev, name)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigURLSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", dev, err)
	}
	if len(data) > MaxConfigURLSize {
		return nil, "", fmt.Errorf("%s: %s is larger than the %d MiB a cloud-config may be", dev, name, MaxConfigURLSize>>20)
	}
	return data, dev + ":/" + name, nil
}

// mountReadOnly tries the file systems a CIDATA volume comes in.
func mountReadOnly(dev, dir string) error {
	var errs []error
	for _, fs := range []string{"iso9660", "vfat", "ext4"} {
		err := unix.Mount(dev, dir, fs, unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, "")
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", fs, err))
	}
	return errors.Join(errs...)
}

// writeConfig stores a fetched config when it is a cloud-config; anything
// else (a script, an empty file) is reported and not used.
func writeConfig(dst string, data []byte, from string) error {
	if err := checkCloudConfig(data, from); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o600)
}

// checkCloudConfig refuses what does not start with a cloud-config header.
func checkCloudConfig(data []byte, from string) error {
	first, _, _ := strings.Cut(string(data), "\n")
	if !slices.Contains(Headers, strings.TrimSpace(first)) {
		return fmt.Errorf("%s is not a cloud-config (first line %q; want one of %s)", from, first, strings.Join(Headers, ", "))
	}
	return nil
}
