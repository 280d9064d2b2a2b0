package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stream builds a test2json stream from "Action Test [Output]" lines; Test "-" is the package.
func stream(pkg string, lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		parts := strings.SplitN(l, " ", 3)
		test := parts[1]
		if test == "-" {
			test = ""
		}
		out := ""
		if len(parts) == 3 {
			out = parts[2] + "\n"
		}
		b.WriteString(`{"Action":"` + parts[0] + `","Package":"` + pkg + `","Test":"` + test +
			`","Output":` + quote(out) + `,"Elapsed":1.5}` + "\n")
	}
	return b.String()
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

func TestReport(t *testing.T) {
	tests := []struct {
		name     string
		streams  map[string]string // file name -> test2json stream
		baseline string
		// wantLines are the results file's lines without the header, status to name only.
		wantLines []string
		wantLast  string
	}{
		{
			name: "subtests are counted, their parents are not",
			streams: map[string]string{"a.json": stream("common",
				"run TestKVPut", "run TestKVPut/NoTLS", "pass TestKVPut/NoTLS",
				"run TestKVPut/TLS", "output TestKVPut/TLS     kv_test.go:50: boom", "fail TestKVPut/TLS",
				"fail TestKVPut", "run TestKVPutX", "skip TestKVPutX", "fail -")},
			wantLines: []string{"PASS common TestKVPut/NoTLS", "FAIL common TestKVPut/TLS kv_test.go:50: boom",
				"SKIP common TestKVPutX"},
			wantLast: "e2e-etcd: 1 passed, 1 failed, 1 skipped",
		},
		{
			name: "a parent failing on its own is counted",
			streams: map[string]string{"a.json": stream("e2e",
				"run TestA", "run TestA/x", "pass TestA/x", "output TestA     e2e.go:98: cannot start", "fail TestA")},
			wantLines: []string{"FAIL e2e TestA e2e.go:98: cannot start", "PASS e2e TestA/x"},
			wantLast:  "e2e-etcd: 1 passed, 1 failed, 0 skipped",
		},
		{
			name: "the framework's logger lines are not the reason; testify's message is",
			streams: map[string]string{"a.json": stream("e2e",
				"run TestB", "output TestB     logger.go:146: INFO starting server",
				"output TestB     b_test.go:7: ", "output TestB         \tError Trace:\tb_test.go:7",
				"output TestB         \tError:      \tReceived unexpected error:",
				"output TestB         \t            \tetcdserver: request timed out",
				"output TestB     logger.go:146: INFO stopped", "fail TestB")},
			wantLines: []string{"FAIL e2e TestB b_test.go:7: Received unexpected error: etcdserver: request timed out"},
			wantLast:  "e2e-etcd: 0 passed, 1 failed, 0 skipped",
		},
		{
			name: "a test cut off by the timeout fails with the panic",
			streams: map[string]string{"a.json": stream("e2e",
				"run TestSlow", "output - panic: test timed out after 1m0s", "fail -")},
			wantLines: []string{"FAIL e2e TestSlow did not finish: panic: test timed out after 1m0s"},
			wantLast:  "e2e-etcd: 0 passed, 1 failed, 0 skipped",
		},
		{
			name: "a package that fails without a test failing gets a pseudo-test",
			streams: map[string]string{"a.json": stream("common",
				"output - flag provided but not defined: -bin-dir", "output - FAIL\tcommon\t0.01s", "fail -")},
			wantLines: []string{"FAIL common (package) a flag provided but not defined: -bin-dir"},
			wantLast:  "e2e-etcd: 0 passed, 1 failed, 0 skipped",
		},
		{
			name: "each binary run answers for its own tests: a timeout in one, a leak check in another",
			streams: map[string]string{
				"TestSlow.json": stream("e2e", "run TestSlow", "output - panic: test timed out after 5m0s", "fail -"),
				"TestLeak.json": stream("e2e", "run TestLeak", "pass TestLeak",
					"output - Unexpected goroutines running after all test(s).", "fail -"),
			},
			wantLines: []string{"FAIL e2e (package) TestLeak Unexpected goroutines running after all test(s).",
				"PASS e2e TestLeak", "FAIL e2e TestSlow did not finish: panic: test timed out after 5m0s"},
			wantLast: "e2e-etcd: 1 passed, 2 failed, 0 skipped",
		},
		{
			name: "failures shared with the baseline count as skipped, across two suites",
			streams: map[string]string{
				"e.json": stream("e2e", "run TestC", "fail TestC", "run TestD", "fail TestD"),
				"c.json": stream("common", "run TestC", "pass TestC"),
			},
			baseline:  "# header\nFAIL\te2e\tTestC\t1.00\tx\nPASS\te2e\tTestD\t1.00\t\n",
			wantLines: []string{"PASS common TestC", "FAILS-ON-ETCD-TOO e2e TestC", "FAIL e2e TestD"},
			wantLast:  "e2e-etcd: 1 passed, 1 failed, 1 skipped",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var inputs []string
			for name, s := range tt.streams {
				p := filepath.Join(dir, name)
				writeFile(t, p, s)
				inputs = append(inputs, p)
			}
			baseline := ""
			if tt.baseline != "" {
				baseline = filepath.Join(dir, "base.txt")
				writeFile(t, baseline, tt.baseline)
			}
			out := filepath.Join(dir, "results.txt")
			var printed strings.Builder
			if err := report("detcd", "", out, baseline, inputs, &printed); err != nil {
				t.Fatal(err)
			}
			if got := lastLine(printed.String()); got != tt.wantLast {
				t.Errorf("last line = %q, want %q", got, tt.wantLast)
			}
			if got := resultLines(t, out); strings.Join(got, "\n") != strings.Join(tt.wantLines, "\n") {
				t.Errorf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantLines, "\n"))
			}
		})
	}
}

// TestReportWritesPlainLog checks that the test output is kept as a plain log beside the input.
func TestReportWritesPlainLog(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "etcd-e2e.json")
	writeFile(t, in, stream("e2e", "run TestA", "output TestA hello", "pass TestA"))
	var printed strings.Builder
	if err := report("etcd", "", filepath.Join(dir, "r.txt"), "", []string{in}, &printed); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "etcd-e2e.log"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello\n" {
		t.Errorf("plain log = %q, want %q", got, "hello\n")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// resultLines returns the results file's test lines as "STATUS pkg test reason", trimmed.
func resultLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, "\t")
		lines = append(lines, strings.TrimSpace(strings.Join([]string{f[0], f[1], f[2], f[4]}, " ")))
	}
	return lines
}
