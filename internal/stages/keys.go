package stages

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/ssh"

	"github.com/kairos-io/kairos/internal/safefile"
)

// KeyFetcher fetches the SSH public keys a cloud-config names instead of
// giving them: github:<user> (https://github.com/<user>.keys),
// gitlab:<user> (https://gitlab.com/<user>.keys) or an https:// URL. The
// zero value fetches from the public services with the default bounds.
type KeyFetcher struct {
	// GitHub and GitLab are the base URLs github:<user> and gitlab:<user>
	// are fetched below; "" is $KAIROS_GITHUB_URL and $KAIROS_GITLAB_URL
	// (a mirror, or a test's server), else https://github.com and
	// https://gitlab.com.
	GitHub, GitLab string
	// Client makes the requests; nil is http.DefaultClient's settings.
	// Redirects are followed only to https URLs, whatever the client.
	Client *http.Client
	// Timeout bounds one request; 0 is 15 seconds. All the fetches for
	// one user (or one authorized_keys entry), retries of requests that
	// could not connect included, together get keysTotalFetches times
	// that.
	Timeout time.Duration
}

const (
	defaultKeysTimeout = 15 * time.Second
	// keysTotalFetches bounds the time all of one user's fetches take, in
	// fetch timeouts: a list of unreachable sources must not hold the
	// boot for minutes.
	keysTotalFetches = 4
	// maxKeysBody is the most a fetched key list may hold: GitHub's for a
	// user with many keys is a few KiB.
	maxKeysBody = 64 << 10
	// maxAuthorizedKeys is the most an existing authorized_keys file may
	// hold for it to be merged into: it is the user's file, and reading a
	// huge one would hold the boot.
	maxAuthorizedKeys = 1 << 20
)

// The environment variables that move github: and gitlab: elsewhere (an
// https mirror): set on the agent's service, e.g. by a drop-in.
const (
	GitHubURLEnv = "KAIROS_GITHUB_URL"
	GitLabURLEnv = "KAIROS_GITLAB_URL"
)

// keyHostUser is a GitHub or GitLab user name (GitLab allows dots and
// underscores too); anything else could make another path of the URL.
var keyHostUser = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// urlScheme says an entry is a URL rather than a key line (key lines
// start with a key type or options, never "scheme://").
var urlScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

func (f KeyFetcher) timeout() time.Duration {
	if f.Timeout > 0 {
		return f.Timeout
	}
	return defaultKeysTimeout
}

// client is the fetcher's client with redirects kept on https: keys sent
// in the clear could be swapped on the way, whatever URL asked for them.
func (f KeyFetcher) client() *http.Client {
	var c http.Client
	if f.Client != nil {
		c = *f.Client
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirected to %s: only https is followed", req.URL.Redacted())
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// source is where entry's keys are fetched from, or "" for a key line.
func (f KeyFetcher) source(entry string) (string, error) {
	base := ""
	var name string
	switch {
	case strings.HasPrefix(entry, "github:"):
		base, name = f.GitHub, strings.TrimPrefix(entry, "github:")
		if base == "" {
			base = cmp.Or(os.Getenv(GitHubURLEnv), "https://github.com")
		}
	case strings.HasPrefix(entry, "gitlab:"):
		base, name = f.GitLab, strings.TrimPrefix(entry, "gitlab:")
		if base == "" {
			base = cmp.Or(os.Getenv(GitLabURLEnv), "https://gitlab.com")
		}
	case urlScheme.MatchString(entry):
		u, err := url.Parse(entry)
		if err != nil {
			return "", fmt.Errorf("keys from %q: %w", entry, err)
		}
		if !strings.EqualFold(u.Scheme, "https") {
			return "", fmt.Errorf("keys from %s: only https:// URLs are fetched (keys over plain %s could be swapped in transit)", u.Redacted(), strings.ToUpper(u.Scheme))
		}
		return entry, nil
	default:
		return "", nil
	}
	if !keyHostUser.MatchString(name) {
		return "", fmt.Errorf("keys of %s: %q is not a user name", entry, name)
	}
	if !strings.HasPrefix(base, "https://") {
		return "", fmt.Errorf("keys of %s: base URL %s is not https", entry, base)
	}
	return strings.TrimRight(base, "/") + "/" + name + ".keys", nil
}

// fetch gives the keys at src, one a line, blank lines dropped. Every
// line must be an SSH public key: a captive portal's login page or a
// proxy's error page answered with 200 must not land in authorized_keys.
//
// At boot the network may still be coming up (no route, no address yet,
// DHCP slow to answer): a request that cannot connect is tried again
// every second for as long as ctx allows (resolve gives all of one user's
// fetches keysTotalFetches fetch timeouts), not only for one fetch
// timeout. A server that connects and does not answer within the fetch
// timeout, and a certificate that does not verify, are final.
func (f KeyFetcher) fetch(ctx context.Context, entry, src string) ([]string, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("fetching keys of %s: "+format, append([]any{entry}, args...)...)
	}
	for {
		keys, retry, err := f.attempt(ctx, src)
		if err == nil {
			return keys, nil
		}
		if !retry {
			return nil, fail("%v", err)
		}
		select {
		case <-ctx.Done():
			return nil, fail("%v (is the node online?)", err)
		case <-time.After(time.Second):
		}
	}
}

// attempt is one request for src, bounded by the fetch timeout; retry
// says whether the request failed to connect, which the network coming up
// may cure.
func (f KeyFetcher) attempt(ctx context.Context, src string) (keys []string, retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := f.client().Do(req)
	if err != nil {
		// Only a connection that could not be made (refused, no route,
		// no DNS answer) is the network coming up; a refused redirect or
		// certificate, or a server that did not answer, is final.
		var oerr *net.OpError
		var derr *net.DNSError
		if ctx.Err() == nil && (errors.As(err, &derr) || errors.As(err, &oerr) && oerr.Op == "dial") {
			return nil, true, err
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%v (is the node online?)", err)
		}
		return nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("%s: %s", redact(src), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeysBody+1))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %v (is the node online?)", redact(src), err)
	}
	if len(body) > maxKeysBody {
		return nil, false, fmt.Errorf("%s: more than %d KiB, refused", redact(src), maxKeysBody>>10)
	}
	for i, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			return nil, false, fmt.Errorf("%s: line %d is not an SSH public key (%v): is it a login or error page?", redact(src), i+1, err)
		}
		keys = append(keys, line)
	}
	return keys, false, nil
}

func redact(src string) string {
	if u, err := url.Parse(src); err == nil {
		return u.Redacted()
	}
	return src
}

// resolve gives the key lines entries stand for: a key line as it is
// (trimmed; one holding several lines gives each), the keys fetched for
// the others. A source that fails is reported while the keys of the
// others are still given, so one unreachable source does not keep a
// user from the keys given inline.
func (f KeyFetcher) resolve(ctx context.Context, entries []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, keysTotalFetches*f.timeout())
	defer cancel()
	var keys []string
	var errs []error
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		src, err := f.source(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if src == "" {
			for _, line := range strings.Split(e, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					keys = append(keys, line)
				}
			}
			continue
		}
		fetched, err := f.fetch(ctx, e, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(fetched) == 0 {
			logrus.Warnf("keys of %s: none there", e)
		}
		keys = append(keys, fetched...)
	}
	return keys, errors.Join(errs...)
}

// authorizeKeys gives user (an account of the root's /etc/passwd) the keys,
// as the authorized_keys step asks: see addKeys. Fetches are bounded by
// ctx too.
func (r Runner) authorizeKeys(ctx context.Context, user string, keys []string) error {
	data, err := safefile.ReadFile(r.root(), "/etc/passwd")
	if err != nil {
		return fmt.Errorf("user %s: %w", user, err)
	}
	var pw []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Split(line, ":"); f[0] == user {
			pw = f
			break
		}
	}
	if pw == nil {
		return fmt.Errorf("user %s not found", user)
	}
	if len(pw) != 7 {
		return fmt.Errorf("user %s: malformed /etc/passwd entry", user)
	}
	uid, uerr := strconv.Atoi(pw[2])
	gid, gerr := strconv.Atoi(pw[3])
	if uerr != nil || gerr != nil {
		return fmt.Errorf("user %s: malformed /etc/passwd entry: uid %q, gid %q", user, pw[2], pw[3])
	}
	home := pw[5]
	// The home is the users stage's to make: keys alone do not make one
	// (a system account's /nonexistent must stay so).
	if _, err := safefile.Lstat(r.root(), home); err != nil {
		return fmt.Errorf("user %s: home %s: %w", user, home, err)
	}
	uid, gid = owner(uid, gid)
	if err := r.addKeys(ctx, home, uid, gid, keys); err != nil {
		return fmt.Errorf("user %s: %w", user, err)
	}
	return nil
}

// addKeys merges the keys entries stand for (see KeyFetcher.resolve) into
// home's .ssh/authorized_keys: lines already there are kept and not added
// again, new ones appended, as cloud-init and yip append. sshd wants
// ~/.ssh (0700) and the file (0600) the user's and closed to others;
// safefile follows no link the user planted on the way.
//
// A source that cannot be fetched fails the keys (the error is given)
// once the keys of the others are written.
func (r Runner) addKeys(ctx context.Context, home string, uid, gid int, entries []string) error {
	keys, ferr := r.Keys.resolve(ctx, entries)
	if len(keys) == 0 {
		return ferr
	}
	dir := path.Join(home, ".ssh")
	file := path.Join(dir, "authorized_keys")
	if err := safefile.Dir(r.root(), dir, 0o700, uid, gid); err != nil {
		return errors.Join(ferr, fmt.Errorf("ssh keys: %w", err))
	}
	st, err := safefile.Lstat(r.root(), file)
	var old []byte
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return errors.Join(ferr, fmt.Errorf("ssh keys: %w", err))
	case st.Size > maxAuthorizedKeys:
		return errors.Join(ferr, fmt.Errorf("ssh keys: %s holds more than %d KiB, not merged into", file, maxAuthorizedKeys>>10))
	default:
		// A link the user planted is refused here, as by the write.
		if old, err = safefile.ReadFile(r.root(), file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return errors.Join(ferr, fmt.Errorf("ssh keys: %w", err))
		}
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(old), "\n") {
		have[strings.TrimSpace(line)] = true
	}
	var b strings.Builder
	b.Write(old)
	if len(old) > 0 && old[len(old)-1] != '\n' {
		b.WriteByte('\n')
	}
	added := 0
	for _, k := range keys {
		if have[k] {
			continue
		}
		have[k] = true
		b.WriteString(k + "\n")
		added++
	}
	upToDate := added == 0 && st.Mode&0o7777 == 0o600 && st.Mode&0o170000 == 0o100000 &&
		(uid < 0 || int(st.Uid) == uid) && (gid < 0 || int(st.Gid) == gid)
	if !upToDate {
		if err := safefile.WriteFile(r.root(), file, []byte(b.String()), 0o600, uid, gid); err != nil {
			return errors.Join(ferr, fmt.Errorf("ssh keys: %w", err))
		}
	}
	if added > 0 {
		logrus.Infof("%s: %d key(s) added", file, added)
	}
	return ferr
}
