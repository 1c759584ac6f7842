package stages

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// testKey is an authorized_keys line of a new ed25519 key.
func testKey(t *testing.T, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	mustDo(t, err)
	sp, err := ssh.NewPublicKey(pub)
	mustDo(t, err)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment
}

// keyServer is an HTTPS server standing for GitHub and GitLab: it serves
// the bodies by path, 404 for any other.
func keyServer(t *testing.T, bodies map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fetcher fetches github:<user> and gitlab:<user> from srv.
func fetcher(srv *httptest.Server) KeyFetcher {
	return KeyFetcher{GitHub: srv.URL, GitLab: srv.URL, Client: srv.Client(), Timeout: 5 * time.Second}
}

// keysRoot is a root with the user u (uid 1000, home /home/u, u's) and a
// fake /etc/shadow (see attackRoot).
func keysRoot(t *testing.T) string {
	t.Helper()
	return attackRoot(t)
}

func authorizedKeys(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "home/u/.ssh/authorized_keys"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Fetched keys are appended to what authorized_keys holds, no line twice:
// github:<user> from <base>/<user>.keys, gitlab:<user> the same, an https
// URL as it is; blank lines dropped; ~/.ssh 0700 and the file 0600, u's.
func TestAuthorizeKeysFetchedAndMerged(t *testing.T) {
	k1, k2, k3, k4, mine := testKey(t, "alice@one"), testKey(t, "alice@two"), testKey(t, "bob@gitlab"), testKey(t, "inline"), testKey(t, "u@own")
	srv := keyServer(t, map[string]string{
		"/alice.keys": k1 + "\n\n" + k2 + "\r\n",
		"/bob.keys":   k3 + "\n",
	})
	root := keysRoot(t)
	userDir(t, root, "/home/u/.ssh")
	// What u has already, the last line without its newline: kept as it is.
	existing := "# u's own keys\n" + mine + "\n" + k1
	writeConfig(t, root, "/home/u/.ssh", "authorized_keys", existing)
	r := Runner{Root: root, Keys: fetcher(srv)}
	err := r.authorizeKeys(context.Background(), "u", []string{"github:alice", "gitlab:bob", "  " + k4 + "  ", k1, srv.URL + "/alice.keys"})
	if err != nil {
		t.Fatal(err)
	}
	want := existing + "\n" + k2 + "\n" + k3 + "\n" + k4 + "\n"
	if got := authorizedKeys(t, root); got != want {
		t.Errorf("authorized_keys:\n%s\nwant:\n%s", got, want)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{"home/u/.ssh", os.ModeDir | 0o700}, {"home/u/.ssh/authorized_keys", 0o600}} {
		if got := info(t, root, c.path); got.mode != c.mode || got.uid != userUID || got.gid != userUID {
			t.Errorf("%s: mode %v owner %d:%d; want %v u:u", c.path, got.mode, got.uid, got.gid, c.mode)
		}
	}
	// Again: every key is there, the file is left alone (same inode).
	ino := info(t, root, "home/u/.ssh/authorized_keys").ino
	if err := r.authorizeKeys(context.Background(), "u", []string{"github:alice", "gitlab:bob", k4}); err != nil {
		t.Fatal(err)
	}
	if got := authorizedKeys(t, root); got != want {
		t.Errorf("second run: authorized_keys:\n%s\nwant:\n%s", got, want)
	}
	if info(t, root, "home/u/.ssh/authorized_keys").ino != ino {
		t.Error("authorized_keys rewritten by a run that added nothing")
	}
}

// A user's own ssh_authorized_keys go the same way when the users stage
// makes the account.
func TestUserKeysFetched(t *testing.T) {
	k1 := testKey(t, "alice@gh")
	srv := keyServer(t, map[string]string{"/alice.keys": k1 + "\n"})
	root := keysRoot(t)
	err := Runner{Root: root, Keys: fetcher(srv)}.applyUsers(context.Background(), cloudconfig.Users{{Name: "v", SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAinline v@laptop", "github:alice"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := "ssh-ed25519 AAAAinline v@laptop\n" + k1 + "\n"
	if got := readFile(t, root, "home/v/.ssh/authorized_keys"); got != want {
		t.Errorf("authorized_keys %q; want %q", got, want)
	}
	if got := info(t, root, "home/v/.ssh/authorized_keys"); got.mode != 0o600 || got.uid != 1001 {
		t.Errorf("authorized_keys: mode %v owner %d; want 0600 v's (1001)", got.mode, got.uid)
	}
}

// Offline, the fetch fails with an error saying so; the keys given inline
// are still written.
func TestAuthorizeKeysOffline(t *testing.T) {
	srv := keyServer(t, nil)
	f := fetcher(srv)
	f.Timeout = time.Second // retried every second for 4 timeouts
	srv.Close()
	root := keysRoot(t)
	inline := testKey(t, "inline")
	err := Runner{Root: root, Keys: f}.authorizeKeys(context.Background(), "u", []string{"github:alice", inline})
	if err == nil || !strings.Contains(err.Error(), "fetching keys of github:alice: ") || !strings.Contains(err.Error(), "(is the node online?)") {
		t.Errorf("error %v; want the fetch of github:alice reported, asking whether the node is online", err)
	}
	if got := authorizedKeys(t, root); got != inline+"\n" {
		t.Errorf("authorized_keys %q; want the inline key written", got)
	}
}

// The network coming up later than one fetch timeout (DHCP slow to answer
// at boot): requests that cannot connect are tried again within the
// user's whole bound, and the keys arrive.
func TestAuthorizeKeysNetworkLate(t *testing.T) {
	key := testKey(t, "late")
	srv := keyServer(t, map[string]string{"/alice.keys": key + "\n"})
	f := fetcher(srv)
	f.Timeout = 500 * time.Millisecond
	// Connections are refused until after one fetch timeout.
	up := time.Now().Add(700 * time.Millisecond)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if time.Now().Before(up) {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	f.Client = &http.Client{Transport: tr}
	root := keysRoot(t)
	if err := (Runner{Root: root, Keys: f}).authorizeKeys(context.Background(), "u", []string{"github:alice"}); err != nil {
		t.Fatal(err)
	}
	if got := authorizedKeys(t, root); got != key+"\n" {
		t.Errorf("authorized_keys %q; want the late key", got)
	}
}

// A certificate that does not verify is final: not tried again until the
// bound.
func TestAuthorizeKeysUntrustedCertificateFinal(t *testing.T) {
	srv := keyServer(t, nil)
	f := fetcher(srv)
	f.Client = nil // does not trust the test server's certificate
	start := time.Now()
	err := Runner{Root: keysRoot(t), Keys: f}.authorizeKeys(context.Background(), "u", []string{"github:alice"})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error %v; want the certificate refused", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("retried for %v", d)
	}
}

// A fetch that does not answer is given up after the timeout.
func TestAuthorizeKeysTimeout(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(srv.Close)
	f := fetcher(srv)
	f.Timeout = 300 * time.Millisecond
	root := keysRoot(t)
	start := time.Now()
	err := Runner{Root: root, Keys: f}.authorizeKeys(context.Background(), "u", []string{"gitlab:slow"})
	if err == nil || !strings.Contains(err.Error(), "fetching keys of gitlab:slow: ") || !strings.Contains(err.Error(), "(is the node online?)") {
		t.Errorf("error %v; want the fetch reported", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
}

// Keys are never fetched over plain HTTP: neither an http:// URL nor a
// redirect to one is requested.
func TestAuthorizeKeysPlainHTTPRefused(t *testing.T) {
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		w.Write([]byte(testKey(t, "swapped") + "\n"))
	}))
	t.Cleanup(plain.Close)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/alice.keys", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	root := keysRoot(t)
	r := Runner{Root: root, Keys: fetcher(srv)}

	err := r.authorizeKeys(context.Background(), "u", []string{plain.URL + "/alice.keys"})
	if err == nil || !strings.Contains(err.Error(), "only https:// URLs are fetched") {
		t.Errorf("http:// URL: error %v; want it refused", err)
	}
	err = r.authorizeKeys(context.Background(), "u", []string{"github:alice"})
	if err == nil || !strings.Contains(err.Error(), "only https is followed") {
		t.Errorf("redirect to http://: error %v; want it refused", err)
	}
	// Base URLs are held to https too.
	r.Keys.GitHub = plain.URL
	err = r.authorizeKeys(context.Background(), "u", []string{"github:alice"})
	if err == nil || !strings.Contains(err.Error(), "is not https") {
		t.Errorf("http:// base URL: error %v; want it refused", err)
	}
	if n := plainHits.Load(); n != 0 {
		t.Errorf("%d request(s) over plain HTTP", n)
	}
	if _, err := os.Lstat(filepath.Join(root, "home/u/.ssh/authorized_keys")); err == nil {
		t.Error("authorized_keys written")
	}
}

// A body over 64 KiB, or one that is not keys (a captive portal's page),
// is refused whole; the other sources' keys are still written.
func TestAuthorizeKeysBadBodyRefused(t *testing.T) {
	k1 := testKey(t, "alice")
	big := strings.Repeat(k1+"\n", (64<<10)/len(k1)+1)
	srv := keyServer(t, map[string]string{
		"/big.keys":   big,
		"/html.keys":  "<html><body>Please log in to the hotel wifi</body></html>\n",
		"/alice.keys": k1 + "\n",
	})
	root := keysRoot(t)
	r := Runner{Root: root, Keys: fetcher(srv)}
	err := r.authorizeKeys(context.Background(), "u", []string{"github:big"})
	if err == nil || !strings.Contains(err.Error(), "fetching keys of github:big: ") || !strings.Contains(err.Error(), "more than 64 KiB") {
		t.Errorf("oversize body: error %v; want it refused", err)
	}
	err = r.authorizeKeys(context.Background(), "u", []string{"gitlab:html", "github:alice", "github:nobody"})
	if err == nil || !strings.Contains(err.Error(), "fetching keys of gitlab:html: ") || !strings.Contains(err.Error(), "not an SSH public key") {
		t.Errorf("page: error %v; want it refused", err)
	}
	if err == nil || !strings.Contains(err.Error(), "fetching keys of github:nobody: ") || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing user: error %v; want the 404 reported", err)
	}
	if got := authorizedKeys(t, root); got != k1+"\n" {
		t.Errorf("authorized_keys %q; want only alice's key", got)
	}
	// Names that would make another URL path are refused.
	for _, e := range []string{"github:../x", "gitlab:a/b", "github:", "github:a?b"} {
		if err := r.authorizeKeys(context.Background(), "u", []string{e}); err == nil || !strings.Contains(err.Error(), "is not a user name") {
			t.Errorf("%s: error %v; want it refused", e, err)
		}
	}
}

// ~/.ssh/authorized_keys planted by u as a link to /etc/shadow is not
// followed: not read into, not written through, the link left as it is.
func TestAuthorizeKeysShadowLinkNotFollowed(t *testing.T) {
	root := keysRoot(t)
	userDir(t, root, "/home/u/.ssh")
	userLink(t, root, "../../../etc/shadow", "/home/u/.ssh/authorized_keys")
	shadow := readFile(t, root, "etc/shadow")
	err := Runner{Root: root}.authorizeKeys(context.Background(), "u", []string{testKey(t, "u@laptop")})
	if err == nil || !strings.Contains(err.Error(), "symbolic link /home/u/.ssh/authorized_keys -> ../../../etc/shadow not followed") {
		t.Errorf("error %v; want the link refused", err)
	}
	unchanged(t, root, "/etc/shadow", shadow, 0o640)
	if st, err := os.Lstat(filepath.Join(root, "home/u/.ssh/authorized_keys")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", st, err)
	}
}

func TestAuthorizeKeysUnknownUser(t *testing.T) {
	root := keysRoot(t)
	err := Runner{Root: root}.authorizeKeys(context.Background(), "nobody", []string{testKey(t, "x")})
	if err == nil || err.Error() != "user nobody not found" {
		t.Errorf("error %v; want user nobody not found", err)
	}
}

// The same keys twice, from one list, are written once; owners are kept
// even when nothing is added but the mode was opened.
func TestAuthorizeKeysModeRestored(t *testing.T) {
	root := keysRoot(t)
	k := testKey(t, "k")
	userDir(t, root, "/home/u/.ssh")
	writeConfig(t, root, "/home/u/.ssh", "authorized_keys", k+"\n")
	mustDo(t, os.Chmod(filepath.Join(root, "home/u/.ssh/authorized_keys"), 0o644))
	mustDo(t, os.Chown(filepath.Join(root, "home/u/.ssh/authorized_keys"), userUID, userUID))
	if err := (Runner{Root: root}).authorizeKeys(context.Background(), "u", []string{k, k}); err != nil {
		t.Fatal(err)
	}
	if got := authorizedKeys(t, root); got != k+"\n" {
		t.Errorf("authorized_keys %q", got)
	}
	st, err := os.Lstat(filepath.Join(root, "home/u/.ssh/authorized_keys"))
	mustDo(t, err)
	if st.Mode() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != userUID {
		t.Errorf("mode %v owner %d; want 0600 u's", st.Mode(), st.Sys().(*syscall.Stat_t).Uid)
	}
}

// $KAIROS_GITHUB_URL moves github: to a mirror (an e2e test's server).
func TestKeysMirrorFromEnvironment(t *testing.T) {
	k := testKey(t, "mirrored")
	srv := keyServer(t, map[string]string{"/alice.keys": k + "\n"})
	t.Setenv(GitHubURLEnv, srv.URL)
	root := keysRoot(t)
	userDir(t, root, "/home/u/.ssh")
	r := Runner{Root: root, Keys: KeyFetcher{Client: srv.Client()}}
	if err := r.authorizeKeys(context.Background(), "u", []string{"github:alice"}); err != nil {
		t.Fatal(err)
	}
	if got := authorizedKeys(t, root); got != k+"\n" {
		t.Errorf("authorized_keys %q", got)
	}
}
