package cloudconfig

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"
)

// metadataProvider is a cloud's metadata service, where the datasource
// step reads the instance's user data.
type metadataProvider struct {
	url    string
	header [2]string // sent with the request, e.g. GCP's Metadata-Flavor
	base64 bool      // the body is base64 (Azure's userData)
	// lowPort: the service answers only connections from a port below
	// 1024 (Scaleway's user data), so that unprivileged processes on the
	// instance cannot read it.
	lowPort bool
	// imdsToken is AWS's IMDSv2: a session token PUT first, sent with the
	// request; instances may refuse requests without one.
	imdsToken string
}

// metadataProviders are the datasource step's providers besides cdrom,
// as upstream names them, with each service's documented user-data URL.
var metadataProviders = map[string]metadataProvider{
	"aws":          {url: "http://169.254.169.254/latest/user-data", imdsToken: "http://169.254.169.254/latest/api/token"},
	"azure":        {url: "http://169.254.169.254/metadata/instance/compute/userData?api-version=2021-01-01&format=text", header: [2]string{"Metadata", "true"}, base64: true},
	"digitalocean": {url: "http://169.254.169.254/metadata/v1/user-data"},
	"gcp":          {url: "http://metadata.google.internal/computeMetadata/v1/instance/attributes/user-data", header: [2]string{"Metadata-Flavor", "Google"}},
	"hetzner":      {url: "http://169.254.169.254/hetzner/v1/userdata"},
	"metaldata":    {url: "http://metaldata/get/userdata"},
	"openstack":    {url: "http://169.254.169.254/openstack/latest/user_data"},
	"packet":       {url: "https://metadata.platformequinix.com/userdata"},
	"scaleway":     {url: "http://169.254.42.42/user_data/cloud-init", lowPort: true},
	"vultr":        {url: "http://169.254.169.254/latest/user-data"},
}

// DatasourceProviders are the provider names the datasource step knows:
// cdrom (a NoCloud CIDATA or OpenStack config-2 volume) and the metadata
// services.
func DatasourceProviders() []string {
	names := []string{"cdrom"}
	for n := range metadataProviders {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// UserdataFile is the name the datasource step gives the user data it
// fetched, in the step's path.
const UserdataFile = "userdata.yaml"

// providerTimeout bounds one metadata request: on a machine outside that
// cloud nothing answers, and every boot waits for it.
const providerTimeout = 2 * time.Second

// FetchProviders tries providers in order and gives the first user data
// found, checked to be a cloud-config, and the provider that had it; ""
// and no error when none had any, as most machines are in no cloud. A
// provider that answers with something unusable is an error.
func (d Datasources) FetchProviders(ctx context.Context, providers []string) ([]byte, string, error) {
	// Most services share 169.254.169.254: one that did not answer is not
	// asked again for the next provider (each costs a timeout at boot).
	silent := map[string]bool{}
	for _, name := range providers {
		var data []byte
		var from string
		var err error
		if name == "cdrom" {
			data, from, err = d.readVolume([]string{"CIDATA", "cidata", "config-2", "CONFIG-2"}, []string{"user-data", "openstack/latest/user_data"})
		} else if p, ok := metadataProviders[name]; ok {
			host := hostOf(p.url)
			if silent[host] {
				continue
			}
			data, err = d.fetchMetadata(ctx, p)
			from = name + " metadata"
			if errors.Is(err, errNoAnswer) {
				silent[host] = true
			}
		} else {
			continue // validate warned: not a provider this agent knows
		}
		if errors.Is(err, errNoData) {
			continue
		}
		if err == nil {
			err = checkCloudConfig(data, from)
		}
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", name, err)
		}
		return data, name, nil
	}
	return nil, "", nil
}

// errNoData is a provider with nothing for this machine; errNoAnswer
// one whose service did not answer at all.
var (
	errNoData   = errors.New("no user data")
	errNoAnswer = fmt.Errorf("%w: the service did not answer", errNoData)
)

// imdsToken asks AWS's metadata service for a session token ("" when it
// gives none).
func imdsToken(ctx context.Context, client *http.Client, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, nil)
	if err != nil {
		return ""
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	tok, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return strings.TrimSpace(string(tok))
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return u
}

func (d Datasources) fetchMetadata(ctx context.Context, p metadataProvider) ([]byte, error) {
	client := d.Client
	if client == nil {
		dial := (&net.Dialer{Timeout: providerTimeout}).DialContext
		if p.lowPort {
			dial = lowPortDial
		}
		// No proxy: the metadata service is link-local.
		client = &http.Client{Timeout: providerTimeout, CheckRedirect: NoDowngrade,
			Transport: &http.Transport{DialContext: dial}}
	}
	ctx, cancel := context.WithTimeout(ctx, providerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return nil, err
	}
	if p.header[0] != "" {
		req.Header.Set(p.header[0], p.header[1])
	}
	if p.imdsToken != "" {
		// IMDSv2 when the service has it; an old one (or another cloud on
		// the same address) answers the GET alone.
		if tok := imdsToken(ctx, client, p.imdsToken); tok != "" {
			req.Header.Set("X-aws-ec2-metadata-token", tok)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, errNoAnswer // not this cloud
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errNoData
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxConfigURLSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxConfigURLSize {
		return nil, fmt.Errorf("the user data is larger than the %d MiB a cloud-config may be", MaxConfigURLSize>>20)
	}
	if p.base64 {
		if data, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(data))); err != nil {
			return nil, fmt.Errorf("the user data is not base64: %w", err)
		}
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, errNoData
	}
	return data, nil
}

// lowPortDial connects from the highest free local port below 1024 (the
// agent runs as root).
func lowPortDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var last error
	for port := 1023; port >= 512; port-- {
		d := net.Dialer{Timeout: providerTimeout, LocalAddr: &net.TCPAddr{Port: port}}
		c, err := d.DialContext(ctx, network, addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			return c, err
		}
		last = err
	}
	return nil, last
}
