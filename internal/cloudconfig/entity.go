package cloudconfig

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EntityKinds are the kinds of the entities format, with the account file
// each lives in by default.
var EntityKinds = map[string]string{
	"user":    "/etc/passwd",
	"group":   "/etc/group",
	"shadow":  "/etc/shadow",
	"gshadow": "/etc/gshadow",
}

// ParsedEntity is an entity as the line it stands for.
type ParsedEntity struct {
	Kind string
	// Key is the line's first field: the user or group name.
	Key string
	// Fields are the line's fields, Key first; nil in a delete that gives
	// the name alone.
	Fields []string
	// Path is the file the line goes in.
	Path string
	// UnsetIDs says which of a user's uid and gid were not given (fields 2
	// and 3): the one the file already has is kept, or a free one taken.
	UnsetUID, UnsetGID bool
}

// entityDoc is every field of every kind, as the entities format names
// them; IDs are pointers so that "not given" differs from 0.
type entityDoc struct {
	Kind string `yaml:"kind"`
	// user
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	UID      *int   `yaml:"uid"`
	GID      *int   `yaml:"gid"`
	Info     string `yaml:"info"`
	Homedir  string `yaml:"homedir"`
	Shell    string `yaml:"shell"`
	// group
	GroupName string `yaml:"group_name"`
	Users     string `yaml:"users"`
	// shadow
	LastChanged    string `yaml:"last_changed"`
	MinimumChanged string `yaml:"minimum_changed"`
	MaximumChanged string `yaml:"maximum_changed"`
	Warn           string `yaml:"warn"`
	Inactive       string `yaml:"inactive"`
	Expire         string `yaml:"expire"`
	Reserved       string `yaml:"reserved"`
	// gshadow
	Name           string `yaml:"name"`
	Administrators string `yaml:"administrators"`
	Members        string `yaml:"members"`
}

// Parse reads the entity document: its kind, name and line. Every field
// is checked to fit a colon-separated line.
func (e Entity) Parse() (ParsedEntity, error) {
	var doc entityDoc
	dec := yaml.NewDecoder(strings.NewReader(e.Entity))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return ParsedEntity{}, fmt.Errorf("not an entity document: %v", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	def, ok := EntityKinds[doc.Kind]
	if !ok {
		return ParsedEntity{}, fmt.Errorf("kind %q is not one of user, group, shadow, gshadow", doc.Kind)
	}
	p := ParsedEntity{Kind: doc.Kind, Path: e.Path}
	if p.Path == "" {
		p.Path = def
	}
	id := func(v *int) string {
		if v == nil {
			return ""
		}
		return strconv.Itoa(*v)
	}
	switch doc.Kind {
	case "user":
		p.Key = doc.Username
		p.Fields = []string{doc.Username, doc.Password, id(doc.UID), id(doc.GID), doc.Info, doc.Homedir, doc.Shell}
		p.UnsetUID, p.UnsetGID = doc.UID == nil, doc.GID == nil
		if doc.Password == "" {
			p.Fields[1] = "x"
		}
	case "group":
		p.Key = doc.GroupName
		p.Fields = []string{doc.GroupName, doc.Password, id(doc.GID), doc.Users}
		p.UnsetGID = doc.GID == nil
		if doc.Password == "" {
			p.Fields[1] = "x"
		}
	case "shadow":
		p.Key = doc.Username
		last := doc.LastChanged
		if last == "now" {
			last = strconv.FormatInt(time.Now().Unix()/86400, 10)
		}
		p.Fields = []string{doc.Username, doc.Password, last, doc.MinimumChanged, doc.MaximumChanged, doc.Warn, doc.Inactive, doc.Expire, doc.Reserved}
	case "gshadow":
		p.Key = doc.Name
		p.Fields = []string{doc.Name, doc.Password, doc.Administrators, doc.Members}
	}
	if p.Key == "" {
		return ParsedEntity{}, fmt.Errorf("a %s entity needs its name (%s)", doc.Kind, map[string]string{"user": "username", "group": "group_name", "shadow": "username", "gshadow": "name"}[doc.Kind])
	}
	for _, f := range p.Fields {
		if strings.ContainsAny(f, ":\n\r\x00") {
			return ParsedEntity{}, fmt.Errorf("field %q has a ':', a line break or a NUL, which the %s line cannot hold", f, p.Path)
		}
	}
	if strings.HasPrefix(p.Key, "+") || strings.HasPrefix(p.Key, "-") {
		return ParsedEntity{}, fmt.Errorf("name %q looks like a NIS compat entry", p.Key)
	}
	return p, nil
}
