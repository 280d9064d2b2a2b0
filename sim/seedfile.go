package sim

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// A seed file keeps a run worth replaying forever, usually a bug the
// simulator found: the options that reproduce it, what outcome is
// expected now, and, for the record, the Go version and commit it was
// found with.
//
//	# why this seed is here
//	run: --seed 12 --members 3 --clients 8 --duration 30s --faults all --liveness 1m0s
//	expect: pass
//	go: go1.26.8
//	commit: 8888cc5
//
// expect is "pass", or "fail: TEXT" for a run that must fail with a
// failure containing TEXT (planted-bug seeds).
type SeedFile struct {
	Path    string
	Note    string
	Options Options
	Expect  string
	Go      string
	Commit  string
}

// ReadSeedFile parses a seed file.
func ReadSeedFile(path string) (*SeedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sf := &SeedFile{Path: path, Expect: "pass"}
	sc := bufio.NewScanner(f)
	var run string
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			sf.Note += strings.TrimSpace(strings.TrimPrefix(line, "#")) + "\n"
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want key: value", path, n)
		}
		v = strings.TrimSpace(v)
		switch k {
		case "run":
			run = v
		case "expect":
			sf.Expect = v
		case "go":
			sf.Go = v
		case "commit":
			sf.Commit = v
		default:
			return nil, fmt.Errorf("%s:%d: unknown key %q", path, n, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if run == "" {
		return nil, fmt.Errorf("%s: no run: line", path)
	}
	if sf.Options, err = ParseOptions(strings.Fields(run)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if sf.Expect != "pass" && !strings.HasPrefix(sf.Expect, "fail:") {
		return nil, fmt.Errorf("%s: expect must be pass or fail: TEXT", path)
	}
	return sf, nil
}

// WriteSeedFile saves a run as a seed file.
func WriteSeedFile(path, note string, o Options, expect, commit string) error {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(note), "\n") {
		fmt.Fprintf(&b, "# %s\n", l)
	}
	fmt.Fprintf(&b, "run: %s\nexpect: %s\ngo: %s\ncommit: %s\n", o, expect, runtime.Version(), commit)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Check reports whether a result is what the seed file expects.
func (sf *SeedFile) Check(r *Result) error {
	if sf.Expect == "pass" {
		if !r.OK() {
			return fmt.Errorf("%s: expected to pass, failed: %s", sf.Path, strings.Join(r.Failures, "; "))
		}
		return nil
	}
	want := strings.TrimSpace(strings.TrimPrefix(sf.Expect, "fail:"))
	for _, f := range r.Failures {
		if strings.Contains(f, want) {
			return nil
		}
	}
	return fmt.Errorf("%s: expected a failure containing %q, got %v", sf.Path, want, r.Failures)
}
