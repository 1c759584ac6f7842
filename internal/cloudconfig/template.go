package cloudconfig

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"text/template"

	"github.com/Masterminds/sprig/v3"

	"github.com/kairos-io/kairos/internal/release"
)

// TemplateData is what a config is rendered with before it is parsed, as
// upstream: `hostname: node-{{ trunc 4 .MachineID }}` names each node
// after its machine id.
type TemplateData struct {
	MachineID string
	// Values is the system, in upstream's key names: node.hostname,
	// node.machineid, os.name, os.vendor, os.version, os.release,
	// os.architecture, kernel.architecture.
	Values map[string]any

	fresh *freshValues
}

// SystemData describes the system below root ("/" on a node; the new root
// in the initramfs): its machine id and os-release, the running kernel.
func SystemData(root string) TemplateData {
	id := ""
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err == nil && len(bytes.TrimSpace(b)) > 0 {
			id = string(bytes.TrimSpace(b))
			break
		}
	}
	osr := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(root, "/etc/os-release")); err == nil {
		osr, _ = release.Parse(b) // a malformed file: no os data
	}
	host, _ := os.Hostname()
	return TemplateData{
		MachineID: id,
		Values: map[string]any{
			"node": map[string]any{"hostname": host, "machineid": id},
			"os": map[string]any{"name": osr["NAME"], "vendor": osr["ID"], "version": osr["VERSION_ID"],
				"release": osr["VERSION_CODENAME"], "architecture": runtime.GOARCH},
			"kernel": map[string]any{"architecture": runtime.GOARCH},
		},
		fresh: &freshValues{},
	}
}

// freshValues are a TemplateData's UUID and Random, drawn the first time a
// config asks for them: crypto/rand waits for the kernel's random pool,
// which early in a boot (the initramfs, a machine without a hardware RNG)
// is not seeded for a second or more, and most configs never use them.
type freshValues struct {
	once         sync.Once
	uuid, random string
}

func (f *freshValues) get() *freshValues {
	f.once.Do(func() {
		f.uuid = randomUUID()
		f.random = randomString(32)
	})
	return f
}

// UUID is a random UUID (upstream's hostname data: `hostname: node-{{
// .UUID }}`), the same everywhere in the configs rendered with this data.
func (d TemplateData) UUID() string { return d.freshOnes().uuid }

// Random is 32 random characters of [0-9a-z], like UUID the same
// everywhere in the configs rendered with this data.
func (d TemplateData) Random() string { return d.freshOnes().random }

func (d TemplateData) freshOnes() *freshValues {
	if d.fresh == nil { // data made by hand (tests): new ones each time
		return (&freshValues{}).get()
	}
	return d.fresh.get()
}

var templateLine = regexp.MustCompile(`^template: [^:]*:(\d+)(?::(\d+))?: (.*)$`)

// Render renders a config file's text with data (text/template and the
// sprig functions). A file without "{{" is returned as is. Errors carry
// the line (and column) of the template.
func Render(file string, text []byte, data TemplateData) ([]byte, *Diagnostic) {
	if !bytes.Contains(text, []byte("{{")) {
		return text, nil
	}
	t, err := template.New(filepath.Base(file)).Funcs(funcs()).Option("missingkey=error").Parse(string(text))
	out := &limitedBuffer{max: maxRendered}
	if err == nil {
		err = t.Execute(out, data)
	}
	if err != nil {
		d := &Diagnostic{File: file, Line: 1, Col: 1, Msg: "template: " + err.Error()}
		if m := templateLine.FindStringSubmatch(err.Error()); m != nil {
			d.Line, _ = strconv.Atoi(m[1])
			if m[2] != "" {
				d.Col, _ = strconv.Atoi(m[2])
			}
			d.Msg = "template: " + m[3]
		}
		return nil, d
	}
	return out.Bytes(), nil
}

// maxRendered bounds what a config may render to (its own limit, as
// fetched configs have theirs): a template is code from the config's
// author, and a loop must not fill the node's memory.
const maxRendered = 4 << 20

// maxItems bounds the lists sprig's generators make.
const maxItems = 10000

// funcs are sprig's, with the generators bounded.
func funcs() template.FuncMap {
	f := sprig.TxtFuncMap()
	bounded := func(n int) error {
		if n > maxItems {
			return fmt.Errorf("%d items: at most %d", n, maxItems)
		}
		return nil
	}
	until, untilStep, repeat := f["until"].(func(int) []int), f["untilStep"].(func(int, int, int) []int), f["repeat"].(func(int, string) string)
	f["until"] = func(n int) ([]int, error) {
		if err := bounded(n); err != nil {
			return nil, err
		}
		return until(n), nil
	}
	f["untilStep"] = func(start, stop, step int) ([]int, error) {
		if step == 0 || (stop-start)/step > maxItems {
			return nil, fmt.Errorf("untilStep %d %d %d: more than %d items", start, stop, step, maxItems)
		}
		return untilStep(start, stop, step), nil
	}
	f["repeat"] = func(n int, s string) (string, error) {
		if n < 0 || n*len(s) > maxRendered {
			return "", fmt.Errorf("repeat: more than %d bytes", maxRendered)
		}
		return repeat(n, s), nil
	}
	f["seq"] = func(params ...int) (string, error) { return "", fmt.Errorf("seq is not available in configs") }
	return f
}

// limitedBuffer fails writes past max bytes.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, fmt.Errorf("the config renders to more than %d MiB", b.max>>20)
	}
	return b.Buffer.Write(p)
}

// randRead is crypto/rand.Read, replaced in tests.
var randRead = rand.Read

func randomUUID() string {
	var b [16]byte
	randRead(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func randomString(n int) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	randRead(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
