package release

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// Names from inputs (an image's KAIROS_ARTIFACT, --name, the MODEL build
// arg) become file names and lines of boot scripts. They are checked here,
// in one place, before any of those uses: a "/" or ".." would write outside
// the output directory, a newline would add commands to an iPXE script.

// nameRe is what an artifact name may hold: the characters of versions
// and k3s releases (v1.31.2+k3s1), starting with a letter or digit, so
// "." and ".." and option-like names are out.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// MaxNameLen keeps every artifact's file name (name plus the longest
// suffix, ".squashfs.sha256") under the usual 255-byte limit.
const MaxNameLen = 200

// CheckName refuses a name that is not safe as one path component and as
// a word of a boot script. The error says why, without the value: callers
// name the input it came from.
func CheckName(v string) error {
	switch {
	case v == "":
		return errors.New("is empty")
	case len(v) > MaxNameLen:
		return fmt.Errorf("is %d bytes long (at most %d)", len(v), MaxNameLen)
	case !nameRe.MatchString(v):
		return errors.New("must start with a letter or digit and hold only letters, digits, '.', '_', '+' and '-' (it becomes file names and lines of boot scripts)")
	}
	return nil
}

// CheckURL refuses a base URL that cannot go as is into a boot script: it
// must be an absolute http, https or tftp URL with a host, and hold no
// spaces, quotes or control characters (iPXE splits its lines on those).
func CheckURL(v string) error {
	if i := strings.IndexFunc(v, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\'
	}); i >= 0 {
		return fmt.Errorf("character %q at offset %d is not allowed", v[i], i)
	}
	u, err := url.Parse(v)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "tftp":
		return errors.New("want an http://, https:// or tftp:// URL")
	case u.Host == "":
		return errors.New("no host")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("a base URL takes no query or fragment (file names are appended to it)")
	}
	return nil
}

// CheckRepository refuses what is not an image repository without a tag
// or digest (registry.example.com/kairos/debian): KAIROS_IMAGE_REPO, to
// which the agent appends a release's tag.
func CheckRepository(v string) error {
	if strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\' }) >= 0 {
		return errors.New("holds a space, a quote or a control character")
	}
	n, err := reference.ParseNormalizedNamed(v)
	if err != nil {
		return fmt.Errorf("is not an image repository: %w", err)
	}
	if !reference.IsNameOnly(n) {
		return errors.New("names a tag or digest: give the repository alone (the agent adds the release's tag)")
	}
	return nil
}
