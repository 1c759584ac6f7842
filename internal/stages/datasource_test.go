package stages

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// metadataServer answers as the clouds' metadata services do, each on its
// own path; the client sends every request to it, whatever the host.
func metadataServer(t *testing.T, routes map[string]func(r *http.Request) (int, string)) *http.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := routes[r.Host+r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		code, body := h(r)
		w.WriteHeader(code)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	target, _ := url.Parse(srv.URL)
	return &http.Client{Transport: rewrite{target}}
}

type rewrite struct{ to *url.URL }

func (rw rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host = rw.to.Scheme, rw.to.Host
	return http.DefaultTransport.RoundTrip(r)
}

// The datasource step writes the first provider's user data, as each
// cloud serves it (GCP wants its header, Azure's is base64), to
// <path>/userdata.yaml, 0600; a machine in no cloud gets nothing and no
// error; user data that is not a cloud-config fails the step.
func TestDatasourceStep(t *testing.T) {
	const cfg = "#cloud-config\nhostname: from-the-cloud\n"
	for name, tc := range map[string]struct {
		providers string
		routes    map[string]func(r *http.Request) (int, string)
		want      string // content of /oem/userdata.yaml; "" none
		err       string
	}{
		"aws after an absent gcp": {
			providers: "[gcp, aws]",
			routes: map[string]func(r *http.Request) (int, string){
				"169.254.169.254/latest/user-data": func(*http.Request) (int, string) { return 200, cfg },
			},
			want: cfg,
		},
		"gcp with its header": {
			providers: "[gcp, aws]",
			routes: map[string]func(r *http.Request) (int, string){
				"metadata.google.internal/computeMetadata/v1/instance/attributes/user-data": func(r *http.Request) (int, string) {
					if r.Header.Get("Metadata-Flavor") != "Google" {
						return 403, "missing header"
					}
					return 200, cfg
				},
				"169.254.169.254/latest/user-data": func(*http.Request) (int, string) { return 200, "#cloud-config\nhostname: wrong\n" },
			},
			want: cfg,
		},
		"aws IMDSv2": {
			providers: "[aws]",
			routes: map[string]func(r *http.Request) (int, string){
				"169.254.169.254/latest/api/token": func(r *http.Request) (int, string) {
					if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
						return 405, ""
					}
					return 200, "session-token"
				},
				"169.254.169.254/latest/user-data": func(r *http.Request) (int, string) {
					if r.Header.Get("X-aws-ec2-metadata-token") != "session-token" {
						return 401, ""
					}
					return 200, cfg
				},
			},
			want: cfg,
		},
		"azure base64": {
			providers: "[azure]",
			routes: map[string]func(r *http.Request) (int, string){
				"169.254.169.254/metadata/instance/compute/userData": func(r *http.Request) (int, string) {
					if r.Header.Get("Metadata") != "true" || r.URL.Query().Get("format") != "text" {
						return 400, "bad request"
					}
					return 200, base64.StdEncoding.EncodeToString([]byte(cfg))
				},
			},
			want: cfg,
		},
		"no cloud": {providers: "[aws, hetzner, cdrom]"},
		"a script": {
			providers: "[openstack]",
			routes: map[string]func(r *http.Request) (int, string){
				"169.254.169.254/openstack/latest/user_data": func(*http.Request) (int, string) { return 200, "#!/bin/sh\nrm -rf /\n" },
			},
			err: "(ds)",
		},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			writeConfig(t, root, "/oem", "a.yaml", "stages:\n  rootfs.before:\n    - name: ds\n      datasource:\n        providers: "+tc.providers+"\n        path: /oem\n")
			sources, errs := Load(root, DefaultDirs)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			r := Runner{Root: root, HTTP: metadataServer(t, tc.routes), ByLabel: t.TempDir()}
			err := r.RunStage(context.Background(), sources, "rootfs")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("RunStage: %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(root, "oem/userdata.yaml"))
			if tc.want == "" {
				if err == nil {
					t.Errorf("userdata.yaml written: %q", data)
				}
				return
			}
			if string(data) != tc.want {
				t.Errorf("userdata.yaml = %q, %v", data, err)
			}
			st, err := os.Stat(filepath.Join(root, "oem/userdata.yaml"))
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("userdata.yaml mode: %v %v", st.Mode(), err)
			}
			// The next boot gets the same: the file is not written again.
			if err := r.RunStage(context.Background(), sources, "rootfs"); err != nil {
				t.Fatal(err)
			}
			if again, err := os.Stat(filepath.Join(root, "oem/userdata.yaml")); err != nil || !os.SameFile(st, again) || again.ModTime() != st.ModTime() {
				t.Error("the same user data was written again")
			}
		})
	}
}
