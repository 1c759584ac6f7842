package flavors

import (
	"fmt"
	"strings"
)

// ParseOSRelease reads os-release(5) content into its variables. Values may
// be bare or in single or double quotes (where \", \\, \$ and \` are escapes);
// comments, blank lines and lines that assign nothing are skipped.
func ParseOSRelease(data []byte) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			continue
		}
		vars[key] = unquote(strings.TrimSpace(value))
	}
	return vars
}

func unquote(v string) string {
	if len(v) < 2 || (v[0] != '"' && v[0] != '\'') || v[len(v)-1] != v[0] {
		return v
	}
	inner := v[1 : len(v)-1]
	if v[0] == '\'' {
		return inner
	}
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		if inner[i] == '\\' && i+1 < len(inner) && strings.IndexByte("\"\\$`", inner[i+1]) >= 0 {
			i++
		}
		b.WriteByte(inner[i])
	}
	return b.String()
}

// matches says whether an os-release VERSION_ID falls under this release.
func (o OSRelease) matches(versionID string) bool {
	return o.VersionID == "" || versionID == o.VersionID || strings.HasPrefix(versionID, o.VersionID+".")
}

// overlaps says whether some os-release would match both.
func (o OSRelease) overlaps(p OSRelease) bool {
	return o.ID == p.ID && (o.matches(p.VersionID) || p.matches(o.VersionID))
}

func (o OSRelease) String() string {
	if o.VersionID == "" {
		return "ID=" + o.ID + ", any VERSION_ID"
	}
	return "ID=" + o.ID + " VERSION_ID=" + o.VersionID
}

// checkOSReleases refuses flavors that one os-release would match both of:
// Detect could not choose between them.
func (c *Catalog) checkOSReleases() error {
	ids := c.IDs()
	for i, a := range ids {
		for _, b := range ids[i+1:] {
			if c.flavors[a].OSRelease.overlaps(c.flavors[b].OSRelease) {
				return fmt.Errorf("flavors/%s.yaml (%s) and flavors/%s.yaml (%s) match the same os-release: make their os_release.version_id distinct",
					a, c.flavors[a].OSRelease, b, c.flavors[b].OSRelease)
			}
		}
	}
	return nil
}

// Detect picks the flavor of a root filesystem from its /etc/os-release
// content: by ID and VERSION_ID, and for a distro no flavor names, by each of
// its ID_LIKE entries in turn (a derivative built on a supported release, such
// as Raspbian 12 on Debian 12, carries its VERSION_ID).
func (c *Catalog) Detect(osRelease []byte) (*Flavor, error) {
	vars := ParseOSRelease(osRelease)
	id, version := strings.ToLower(vars["ID"]), vars["VERSION_ID"]
	found := fmt.Sprintf("os-release says ID=%q VERSION_ID=%q", id, version)
	if like := vars["ID_LIKE"]; like != "" {
		found += fmt.Sprintf(" ID_LIKE=%q", like)
	}
	if id == "" {
		return nil, fmt.Errorf("os-release has no ID; supported: %s", c.supported())
	}
	for _, candidate := range append([]string{id}, strings.Fields(strings.ToLower(vars["ID_LIKE"]))...) {
		var releases []string
		for _, fid := range c.IDs() {
			f := c.flavors[fid]
			if f.OSRelease.ID != candidate {
				continue
			}
			if f.OSRelease.matches(version) {
				// Load refuses overlapping os_release, so this is the only match.
				return f, nil
			}
			releases = append(releases, f.OSRelease.VersionID)
		}
		// A known distro in an unsupported release is not an ID_LIKE case.
		if candidate == id && len(releases) > 0 {
			return nil, fmt.Errorf("%s: no flavor for that release of %s (flavors cover VERSION_ID %s); supported: %s",
				found, id, strings.Join(releases, ", "), c.supported())
		}
	}
	return nil, fmt.Errorf("%s: no flavor matches; supported: %s", found, c.supported())
}

// supported lists every flavor with the os-release it matches.
func (c *Catalog) supported() string {
	var out []string
	for _, id := range c.IDs() {
		out = append(out, id+" ("+c.flavors[id].OSRelease.String()+")")
	}
	return strings.Join(out, ", ")
}
