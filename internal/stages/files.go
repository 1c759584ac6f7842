package stages

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/safefile"
)

// maxDecoded bounds what a file's content may decode to: a gzip bomb in a
// cloud-config must not fill the disk.
const maxDecoded = 64 << 20

// Decode turns a file's content into its bytes per its encoding: b64 and
// base64; gz and gzip (the content is the compressed bytes themselves);
// gz+base64, gzip+base64, gz+b64, gzip+b64 (base64 of gzip).
func Decode(content, encoding string) ([]byte, error) {
	data := []byte(content)
	enc := strings.ToLower(encoding)
	if strings.HasSuffix(enc, "b64") || strings.HasSuffix(enc, "base64") {
		d, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(content), ""))
		if err != nil {
			return nil, fmt.Errorf("content is not %s: %w", encoding, err)
		}
		data = d
	}
	if strings.HasPrefix(enc, "gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("content is not %s: %w", encoding, err)
		}
		d, err := io.ReadAll(io.LimitReader(zr, maxDecoded+1))
		if err != nil {
			return nil, fmt.Errorf("content is not %s: %w", encoding, err)
		}
		if len(d) > maxDecoded {
			return nil, fmt.Errorf("content decodes to more than %d MiB", maxDecoded>>20)
		}
		data = d
	}
	return data, nil
}

func (r Runner) writeFile(f cloudconfig.File) error {
	data, err := Decode(f.Content, f.Encoding)
	if err != nil {
		return err
	}
	mode := os.FileMode(f.Permissions)
	if mode == 0 {
		mode = 0o644
	}
	uid, gid, err := r.resolveOwner(f.Owner, f.Group, f.OwnerString)
	if err != nil {
		return err
	}
	root, name := r.at(f.Path)
	return safefile.WriteFile(root, name, data, mode, uid, gid)
}

// resolveOwner is the uid and gid for owner/group, or for owner_string
// ("user" or "user:group", names or numbers) looked up in the root's
// account files, which wins when set.
func (r Runner) resolveOwner(uid, gid int, ownerString string) (int, int, error) {
	if ownerString == "" {
		u, g := owner(uid, gid)
		return u, g, nil
	}
	user, group, hasGroup := strings.Cut(ownerString, ":")
	// lookup is name's row in file (with at least min fields) and its id.
	lookup := func(file, name string, min int) (int, []string, error) {
		if n, err := strconv.Atoi(name); err == nil {
			return n, nil, nil
		}
		t, err := readTable(r.root(), file, 0o644)
		if err != nil {
			return 0, nil, err
		}
		row := t.find(name)
		if row == nil {
			return 0, nil, fmt.Errorf("owner_string %q: no %s in %s", ownerString, name, file)
		}
		if len(row) >= min {
			if n, err := strconv.Atoi(row[2]); err == nil {
				return n, row, nil
			}
		}
		return 0, nil, fmt.Errorf("owner_string %q: malformed %s entry %s", ownerString, file, name)
	}
	u, row, err := lookup("/etc/passwd", user, 7)
	if err != nil {
		return 0, 0, err
	}
	g := u
	if row != nil {
		g, _ = strconv.Atoi(row[3]) // the user's primary group
	}
	if hasGroup {
		if g, _, err = lookup("/etc/group", group, 3); err != nil {
			return 0, 0, err
		}
	}
	u, g = owner(u, g)
	return u, g, nil
}

// maxDownload bounds a download (held in memory, then written whole), as
// a wrong URL must not fill the node's memory or disk.
const maxDownload = 512 << 20

func (r Runner) download(ctx context.Context, d cloudconfig.Download) error {
	timeout := time.Duration(d.Timeout) * time.Second
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL, nil)
	if err != nil {
		return err
	}
	client := r.HTTP
	if client == nil {
		client = &http.Client{CheckRedirect: cloudconfig.NoDowngrade}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", cloudconfig.Redact(d.URL), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxDownload+1))
	if err != nil {
		return fmt.Errorf("%s: %w", cloudconfig.Redact(d.URL), err)
	}
	if len(data) > maxDownload {
		return fmt.Errorf("%s: larger than %d MiB", cloudconfig.Redact(d.URL), maxDownload>>20)
	}
	mode := os.FileMode(d.Permissions)
	if mode == 0 {
		mode = 0o644
	}
	uid, gid, err := r.resolveOwner(d.Owner, d.Group, d.OwnerString)
	if err != nil {
		return err
	}
	root, name := r.at(d.Path)
	return safefile.WriteFile(root, name, data, mode, uid, gid)
}
