package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefusalExitCode: the binary refuses a data directory that lost its
// log with a non-zero exit and an error that says what to do, and
// documents the repair flag in --help.
func TestRefusalExitCode(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "member", "snap"), 0o700); err != nil {
		t.Fatal(err)
	}
	// The marker a bootstrap leaves, without the log beside it.
	if err := os.WriteFile(filepath.Join(dir, "member", "initialized"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	code := run([]string{"--data-dir", dir,
		"--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:0"}, &stderr)
	if code == 0 {
		t.Fatalf("exit code 0 on a data dir without its log; stderr:\n%s", stderr.String())
	}
	for _, w := range []string{"cannot start", "holds no log segments", "member remove", "snapshot restore"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr does not say %q:\n%s", w, stderr.String())
		}
	}

	stderr.Reset()
	if code := run([]string{"--help"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "-unsafe-wal-repair") {
		t.Fatalf("--help exit %d, output lacks -unsafe-wal-repair:\n%s", code, stderr.String())
	}
}
