package main

import (
	"bytes"
	"testing"

	"github.com/kairos-io/kairos/internal/p2p/token"
)

// generate-token prints a token the reader takes, different each time.
func TestGenerateToken(t *testing.T) {
	var seen []string
	for range 2 {
		cmd := rootCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"generate-token"})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		tok := string(bytes.TrimSpace(out.Bytes()))
		if _, err := token.Parse(tok); err != nil {
			t.Fatalf("the printed token does not parse: %v", err)
		}
		seen = append(seen, tok)
	}
	if seen[0] == seen[1] {
		t.Error("two tokens are the same")
	}
}
