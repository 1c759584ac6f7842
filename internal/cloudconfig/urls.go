package cloudconfig

import (
	"errors"
	"net/http"
	"net/url"
)

// Redact is u for messages: without its user info and query, which may
// hold credentials or tokens.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<a URL that does not parse>"
	}
	p.User = nil
	if p.RawQuery != "" {
		p.RawQuery = "…"
	}
	return p.String()
}

// NoDowngrade is an http.Client CheckRedirect that refuses an https URL
// redirecting to plain http (a config fetched over TLS must not come from
// where anyone on the path can change it), and more than 10 redirects.
func NoDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if len(via) > 0 && via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return errors.New("refusing a redirect from https to " + req.URL.Scheme)
	}
	return nil
}
