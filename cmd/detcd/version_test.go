package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/detcd/detcd/server"
)

// TestVersionOutput: --version reads as etcd's: etcd's e2e framework
// takes the version from the line that starts with "etcd Version:" (the
// text after the colon, trimmed, must be a semantic version), and etcd's
// lines come first, in etcd's order.
func TestVersionOutput(t *testing.T) {
	var b bytes.Buffer
	printVersion(&b)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i, prefix := range []string{"etcd Version: ", "Git SHA: ", "Go Version: go", "Go OS/Arch: ", "detcd Version: "} {
		if i >= len(lines) || !strings.HasPrefix(lines[i], prefix) {
			t.Fatalf("line %d does not start with %q:\n%s", i+1, prefix, b.String())
		}
	}
	_, v, _ := strings.Cut(lines[0], ":")
	if v = strings.TrimSpace(v); v != server.Version || len(strings.Split(v, ".")) != 3 {
		t.Fatalf("etcd version %q, want %q", v, server.Version)
	}
}
