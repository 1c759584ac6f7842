package release

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	good := []string{
		"kairos-debian-bookworm-core-amd64-generic-v1.0.0",
		"kairos-debian-bookworm-standard-amd64-generic-v1.0.0-k3sv1.31.2+k3s1",
		"rpi4", "my_model.2",
	}
	for _, v := range good {
		if err := CheckName(v); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", v, err)
		}
	}
	bad := []string{
		"", ".", "..", "../../../../tmp/x/evil", "a/b", "evil\nshell", "-rf", ".hidden",
		"x y", "x\x00y", "name;reboot", "${base-url}", strings.Repeat("a", MaxNameLen+1),
	}
	for _, v := range bad {
		if err := CheckName(v); err == nil {
			t.Errorf("CheckName(%q) = nil, want an error", v)
		}
	}
}

func TestCheckURL(t *testing.T) {
	good := []string{"http://10.0.2.2:8080", "https://boot.example.com/kairos/v1", "tftp://10.0.0.1/"}
	for _, v := range good {
		if err := CheckURL(v); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", v, err)
		}
	}
	bad := []string{
		"", "10.0.2.2:8080", "file:///etc", "http://", "http://h/x\nshell", "http://h/x y",
		`http://h/"x`, "http://h/?a=b", "http://h/#frag", "javascript:alert(1)",
	}
	for _, v := range bad {
		if err := CheckURL(v); err == nil {
			t.Errorf("CheckURL(%q) = nil, want an error", v)
		}
	}
}
