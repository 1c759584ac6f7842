package bytesize

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"3221225472": 3 << 30, "16G": 16 << 30, "16GiB": 16 << 30, "16g": 16 << 30,
		"3000M": 3000 << 20, "3000MiB": 3000 << 20, "1T": 1 << 40, "4096K": 4 << 20, "512B": 512, "16 G": 16 << 30,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "1.5G", "-3G", "16GB", "16 G B", "99999999999999999999", "9000000000T"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, got)
		}
	}
}
