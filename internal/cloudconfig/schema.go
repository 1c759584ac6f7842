// Package cloudconfig knows the shape of a Kairos cloud-config: the keys of
// the contract, as data, and a validator that reports what does not fit
// with the file's line and column. Boot never depends on it: stages ignore
// what they do not know; `kairos-agent validate` tells the operator first.
package cloudconfig

// kind is what a YAML node must be.
type kind int

const (
	scalar  kind = iota // string, number, bool
	mapping             // fixed keys (fields)
	anyMap              // any keys, values of elem
	list                // items of elem
)

// node describes one place of the document.
type node struct {
	kind   kind
	fields map[string]*node
	elem   *node
	// values, when set, are the accepted scalar values.
	values []string
}

func m(fields map[string]*node) *node { return &node{kind: mapping, fields: fields} }
func l(elem *node) *node              { return &node{kind: list, elem: elem} }
func anyOf(elem *node) *node          { return &node{kind: anyMap, elem: elem} }
func s() *node                        { return &node{kind: scalar} }
func enum(v ...string) *node          { return &node{kind: scalar, values: v} }

// strings is a list of scalars; YAML users often write one scalar instead.
func strs() *node { return l(s()) }

var user = m(map[string]*node{
	"name": s(), "passwd": s(), "groups": strs(), "ssh_authorized_keys": strs(),
	"shell": s(), "homedir": s(), "uid": s(), "primary_group": s(), "lock_passwd": s(),
})

var step = m(map[string]*node{
	"name": s(), "if": s(), "commands": strs(),
	"files": l(m(map[string]*node{
		"path": s(), "content": s(), "permissions": s(), "owner": s(), "group": s(), "encoding": s(),
	})),
	"directories": l(m(map[string]*node{"path": s(), "permissions": s(), "owner": s(), "group": s()})),
	"users":       anyOf(user),
	"dns":         m(map[string]*node{"nameservers": strs(), "search": strs(), "options": strs(), "path": s()}),
	"systemctl":   m(map[string]*node{"enable": strs(), "disable": strs(), "start": strs(), "mask": strs()}),
	"environment": anyOf(s()), "environment_file": s(), "hostname": s(),
})

var partition = m(map[string]*node{"size": s(), "fs": s(), "label": s()})

var kubernetes = func() *node {
	return m(map[string]*node{"enabled": s(), "args": strs(), "env": anyOf(s()), "replace_args": s(), "replace_env": s()})
}

// schema is the whole document.
var schema = m(map[string]*node{
	"users":    l(user),
	"hostname": s(),
	"install": m(map[string]*node{
		"auto": s(), "device": s(), "reboot": s(), "poweroff": s(), "source": s(),
		"partitions":       m(map[string]*node{"oem": partition, "recovery": partition, "state": partition, "persistent": partition}),
		"grub_options":     anyOf(s()),
		"bind_mounts":      strs(),
		"ephemeral_mounts": strs(),
	}),
	"upgrade":   m(map[string]*node{"source": s(), "recovery": s(), "reboot": s()}),
	"reset":     m(map[string]*node{"reset-persistent": s(), "reset-oem": s(), "reboot": s(), "poweroff": s()}),
	"k3s":       kubernetes(),
	"k3s-agent": kubernetes(),
	"p2p": m(map[string]*node{
		"network_token": s(), "network_id": s(), "role": enum("master", "worker", "auto"),
		"auto":          m(map[string]*node{"enable": s(), "ha": m(map[string]*node{"enable": s(), "master_nodes": s()})}),
		"minimum_nodes": s(),
		"vpn":           m(map[string]*node{"create": s(), "use": s(), "env": anyOf(s())}),
	}),
	"stages":     m(stageFields()),
	"config_url": s(),
	"debug":      s(),
	"strict":     s(),
})

// Stages of the contract, each with .before and .after for the boot ones.
var Stages = []string{"rootfs", "initramfs", "boot", "fs", "network", "reconcile",
	"before-install", "after-install-chroot", "after-install", "before-upgrade", "after-upgrade",
	"before-reset", "after-reset"}

func stageFields() map[string]*node {
	f := map[string]*node{}
	for i, st := range Stages {
		f[st] = l(step)
		if i < 6 {
			f[st+".before"] = l(step)
			f[st+".after"] = l(step)
		}
	}
	return f
}
