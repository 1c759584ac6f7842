// Package sbom writes a release image's software bill of materials in
// SPDX 2.3 JSON: syft's catalog of the image's own package databases
// (dpkg, rpm, apk) and binaries, read from the OCI archive the build
// wrote, with the Kairos parts added under the versions the image was
// built with (kairos-agent, k3s): syft sees the agent as a Go binary of
// no released version and the k3s release as whatever it is.
package sbom

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Package is a component the SBOM must name with its version.
type Package struct {
	Name, Version string
	// PURL is its package URL (pkg:github/k3s-io/k3s@v1.31.2+k3s1).
	PURL string
}

// Syft is the syft binary: $KAIROS_SYFT (./earthly.sh builds it from
// tools/syft), else on PATH.
func Syft() (string, error) {
	if p := os.Getenv("KAIROS_SYFT"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("syft")
	if err != nil {
		return "", fmt.Errorf("syft not found: ./earthly.sh +release builds it (tools/syft), or put it on PATH")
	}
	return p, nil
}

// Source is the image to catalog: an OCI archive, or an image in a
// registry (the one a builder pushed) by its pinned reference.
type Source struct {
	Archive string
	Ref     string
	// PlainHTTP reaches Ref's registry over HTTP.
	PlainHTTP bool
	// Platform picks the image of an index ("linux/arm64"; default the host's).
	Platform string
}

func (s Source) String() string {
	if s.Archive != "" {
		return filepath.Base(s.Archive)
	}
	return s.Ref
}

// Write catalogs the image and writes its SPDX JSON to out, with extra
// added.
func Write(ctx context.Context, src Source, out string, extra []Package) error {
	syft, err := Syft()
	if err != nil {
		return err
	}
	tmp := out + ".syft"
	defer os.Remove(tmp)
	from := "oci-archive:" + src.Archive
	if src.Archive == "" {
		from = "registry:" + src.Ref
	}
	args := []string{"scan", from, "-o", "spdx-json=" + tmp}
	if src.Platform != "" {
		args = append(args, "--platform", src.Platform)
	}
	cmd := exec.CommandContext(ctx, syft, args...)
	// Quiet and offline but for the image's registry: no update check.
	cmd.Env = append(os.Environ(), "SYFT_CHECK_FOR_APP_UPDATE=false")
	if src.PlainHTTP {
		cmd.Env = append(cmd.Env, "SYFT_REGISTRY_INSECURE_USE_HTTP=true")
	}
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("syft %s: %w\n%s", src, err, o)
	}
	data, err := os.ReadFile(tmp)
	if err != nil {
		return err
	}
	doc, err := add(data, extra)
	if err != nil {
		return fmt.Errorf("syft's SBOM of %s: %w", src, err)
	}
	return os.WriteFile(out, doc, 0o644)
}

// add puts extra into an SPDX JSON document: packages, each contained by
// what the document describes.
func add(data []byte, extra []Package) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if v, _ := doc["spdxVersion"].(string); !strings.HasPrefix(v, "SPDX-2.") {
		return nil, fmt.Errorf("not an SPDX 2 document (%q)", v)
	}
	root := "SPDXRef-DOCUMENT"
	if ds, ok := doc["documentDescribes"].([]any); ok && len(ds) == 1 {
		if s, ok := ds[0].(string); ok {
			root = s
		}
	}
	pkgs, _ := doc["packages"].([]any)
	rels, _ := doc["relationships"].([]any)
	for _, p := range extra {
		id := "SPDXRef-Package-kairos-" + spdxID(p.Name)
		pkg := map[string]any{
			"name": p.Name, "SPDXID": id, "versionInfo": p.Version,
			"downloadLocation": "NOASSERTION", "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
			"copyrightText": "NOASSERTION", "filesAnalyzed": false,
		}
		if p.PURL != "" {
			pkg["externalRefs"] = []any{map[string]any{
				"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": p.PURL,
			}}
		}
		pkgs = append(pkgs, pkg)
		rel := "CONTAINS"
		if root == "SPDXRef-DOCUMENT" {
			rel = "DESCRIBES"
		}
		rels = append(rels, map[string]any{"spdxElementId": root, "relationshipType": rel, "relatedSpdxElement": id})
	}
	doc["packages"], doc["relationships"] = pkgs, rels
	return json.MarshalIndent(doc, "", " ")
}

// spdxID keeps what an SPDX identifier may hold: letters, digits, '.', '-'.
func spdxID(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// Names are the packages of an SPDX document with their versions: what
// the tests and `kairos release` check of an SBOM.
func Names(data []byte) (map[string]string, error) {
	var doc struct {
		Packages []struct {
			Name    string `json:"name"`
			Version string `json:"versionInfo"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range doc.Packages {
		out[p.Name] = p.Version
	}
	return out, nil
}
