// Command e2ereport turns the test2json streams of one scripts/e2e-etcd run into a per-test
// results file and the run's closing line, `e2e-etcd: P passed, F failed, S skipped`.
//
//	e2ereport -server detcd -out results-detcd.txt [-baseline results-etcd.txt] run1.json run2.json
//
// Each input is the output of `go tool test2json -p PKG` over one run of a suite's test
// binary; a plain log (the test output alone) is written next to it as .log. A test is
// counted once, at the deepest level it has a result: subtests are counted and their parents
// are not, unless a parent failed on its own (no subtest failed). A test that started but
// never finished (the binary timed out or crashed) counts as failed. With -baseline (the
// results file of the same selection against the real etcd), a test that fails on both is
// counted as skipped and listed: it says nothing about detcd.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Statuses written to a results file. failsOnBaseline is a failure the baseline server shares.
const (
	statusPass      = "PASS"
	statusFail      = "FAIL"
	statusSkip      = "SKIP"
	failsOnBaseline = "FAILS-ON-ETCD-TOO"
)

// maxListedFailures bounds the failures echoed to the terminal; the results file has them all.
const maxListedFailures = 25

// packageTest names the pseudo-test that carries a test binary's own failure (a crash in
// TestMain, a goroutine leak check) when none of its tests reported one.
const packageTest = "(package)"

// event is one line of test2json output.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// result is one test's outcome. status is empty while the test has started but not finished.
type result struct {
	pkg, name   string
	status      string
	elapsedSecs float64
	reason      string
	reasonLines int // lines still to take into reason after a bare "file.go:N:" line (testify)
}

func (r *result) key() string { return r.pkg + "\t" + r.name }

// run is everything read from the inputs: results keyed by package and test name, and a
// pseudo-test for each input whose binary failed with no failed test to show for it.
type run struct {
	results     map[string]*result
	pkgFailures []*result
}

// input is what one test2json stream (one run of a test binary) says beyond its tests.
type input struct {
	name    string    // the file's base name, naming a package failure
	pkg     string    // the package of its events
	started []*result // the tests it ran
	failed  bool      // the binary's verdict
	// reason is the line that says why the binary failed outside its tests: a panic (a
	// timeout shows as one), else the last line before go test's FAIL and exit status lines.
	reason string
}

// fileLine matches the "    name_test.go:42: message" prefix of a test's t.Log/t.Error line.
var fileLine = regexp.MustCompile(`^\s*([\w.-]+\.go):\d+: ?(.*)$`)

func main() {
	server := flag.String("server", "detcd", "name of the server under test, for the header")
	out := flag.String("out", "", "results file to write")
	baseline := flag.String("baseline", "", "results file of the same selection against etcd (optional)")
	selection := flag.String("run", "", "the -run regexp used, for the header")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: e2ereport -server NAME -out FILE [-baseline FILE] run.json...")
		os.Exit(2)
	}
	if err := report(*server, *selection, *out, *baseline, flag.Args(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "e2ereport:", err)
		os.Exit(1)
	}
}

// report reads the inputs, writes the results file and prints the failures and closing line.
func report(server, selection, out, baselinePath string, inputs []string, w io.Writer) error {
	r := run{results: map[string]*result{}}
	for _, in := range inputs {
		if err := r.readFile(in); err != nil {
			return err
		}
	}
	counted := r.counted()
	var base map[string]string
	if baselinePath != "" {
		b, err := readBaseline(baselinePath)
		if err != nil {
			return err
		}
		base = b
	}
	applyBaseline(counted, base)
	if err := writeResults(out, server, selection, baselinePath, counted); err != nil {
		return err
	}
	printSummary(w, out, counted)
	return nil
}

// readFile parses one test2json stream and writes its plain log next to it.
func (r *run) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open test2json output: %w", err)
	}
	defer f.Close()
	logPath := strings.TrimSuffix(path, ".json") + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create plain log: %w", err)
	}
	defer logFile.Close()
	logW := bufio.NewWriter(logFile)
	in := &input{name: strings.TrimSuffix(filepath.Base(path), ".json")}
	if err := r.read(f, logW, in); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := logW.Flush(); err != nil {
		return fmt.Errorf("write plain log: %w", err)
	}
	r.finish(in)
	return nil
}

// finish fails the tests of an input that never finished, and records a pseudo-test for a
// binary that failed without a failed test (a crash in TestMain, a goroutine leak check).
func (r *run) finish(in *input) {
	testFailed := false
	for _, res := range in.started {
		if res.status == "" {
			res.status = statusFail
			res.reason = strings.TrimSpace("did not finish: " + in.reason)
		}
		testFailed = testFailed || res.status == statusFail
	}
	if in.failed && !testFailed {
		r.pkgFailures = append(r.pkgFailures, &result{pkg: in.pkg, name: packageTest + " " + in.name,
			status: statusFail, reason: in.reason})
	}
}

// read applies a test2json stream's events; lines that are not JSON (a crash of test2json's
// child before any framing) go to the log and to the package's reason.
func (r *run) read(stream io.Reader, logW io.Writer, in *input) error {
	sc := bufio.NewScanner(stream)
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			ev = event{Action: "output", Output: sc.Text() + "\n"}
		}
		if ev.Action == "output" {
			if _, err := io.WriteString(logW, ev.Output); err != nil {
				return fmt.Errorf("write plain log: %w", err)
			}
		}
		r.apply(ev, in)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read test2json output: %w", err)
	}
	return nil
}

// apply records one event.
func (r *run) apply(ev event, in *input) {
	if ev.Package != "" {
		in.pkg = ev.Package
	}
	if ev.Test == "" {
		in.applyPackage(ev)
		return
	}
	key := ev.Package + "\t" + ev.Test
	res, ok := r.results[key]
	if !ok {
		res = &result{pkg: ev.Package, name: ev.Test}
		r.results[key] = res
		in.started = append(in.started, res)
	}
	switch ev.Action {
	case "pass":
		res.status, res.elapsedSecs = statusPass, ev.Elapsed
	case "fail":
		res.status, res.elapsedSecs = statusFail, ev.Elapsed
	case "skip":
		res.status, res.elapsedSecs = statusSkip, ev.Elapsed
	case "output":
		res.noteOutput(ev.Output)
	}
}

// applyPackage records a package-level event: the binary's verdict, or a line of its own
// output that may say why it failed.
func (in *input) applyPackage(ev event) {
	switch ev.Action {
	case "fail":
		in.failed = true
	case "output":
		line := strings.TrimSpace(ev.Output)
		if line == "" || strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "exit status") ||
			strings.HasPrefix(in.reason, "panic:") {
			return
		}
		in.reason = line
	}
}

// noteOutput keeps the line most likely to say why a test failed or was skipped: the last
// t.Log/t.Fatal line that is not the e2e framework's process logger, or a panic. testify's
// assertions print a bare "file.go:N:" line and the message on the lines after it.
func (res *result) noteOutput(output string) {
	line := strings.TrimSpace(output)
	if strings.HasPrefix(line, "panic:") {
		res.reason, res.reasonLines = line, 0
		return
	}
	if strings.HasPrefix(res.reason, "panic:") {
		return
	}
	if m := fileLine.FindStringSubmatch(strings.TrimRight(output, "\n")); m != nil {
		if m[1] == "logger.go" {
			res.reasonLines = 0
			return
		}
		res.reason, res.reasonLines = line, 0
		if m[2] == "" {
			res.reasonLines = 3
		}
		return
	}
	if res.reasonLines > 0 && line != "" && !strings.HasPrefix(line, "Error Trace:") {
		res.reason += " " + strings.Join(strings.Fields(strings.TrimPrefix(line, "Error:")), " ")
		res.reasonLines--
	}
}

// counted returns the results that the closing line counts, sorted by package and name.
func (r *run) counted() []*result {
	hasChild, childFailed := r.parents()
	var counted []*result
	for _, res := range r.results {
		if !hasChild[res.key()] || (res.status == statusFail && !childFailed[res.key()]) {
			counted = append(counted, res)
		}
	}
	counted = append(counted, r.pkgFailures...)
	sort.Slice(counted, func(i, j int) bool { return counted[i].key() < counted[j].key() })
	return counted
}

// parents returns, by key, the tests that have subtests and those with a failed subtest.
func (r *run) parents() (hasChild, childFailed map[string]bool) {
	hasChild, childFailed = map[string]bool{}, map[string]bool{}
	for _, res := range r.results {
		for i := strings.LastIndex(res.name, "/"); i > 0; i = strings.LastIndex(res.name[:i], "/") {
			parent := res.pkg + "\t" + res.name[:i]
			hasChild[parent] = true
			childFailed[parent] = childFailed[parent] || res.status == statusFail
		}
	}
	return hasChild, childFailed
}

// readBaseline reads a results file into status by package and test.
func readBaseline(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open baseline: %w", err)
	}
	defer f.Close()
	base := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) < 3 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		base[fields[1]+"\t"+fields[2]] = fields[0]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	return base, nil
}

// applyBaseline marks the failures that the baseline server shares.
func applyBaseline(counted []*result, base map[string]string) {
	for _, res := range counted {
		if res.status == statusFail && base[res.key()] == statusFail {
			res.status = failsOnBaseline
		}
	}
}

// writeResults writes one tab-separated line per counted test: status, package, test,
// seconds, reason.
func writeResults(path, server, selection, baselinePath string, counted []*result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# e2e-etcd results against %s; -run %q\n", server, selection)
	if baselinePath != "" {
		fmt.Fprintf(&b, "# %s: failed here and in %s\n", failsOnBaseline, baselinePath)
	}
	b.WriteString("# status\tpackage\ttest\tseconds\treason\n")
	for _, res := range counted {
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\n", res.status, res.pkg, res.name,
			strconv.FormatFloat(res.elapsedSecs, 'f', 2, 64), res.reason)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// printSummary prints the failures (a bounded number), the tests that fail on etcd too, and
// the closing line.
func printSummary(w io.Writer, out string, counted []*result) {
	var passed, failed, skipped int
	var failures, shared []*result
	for _, res := range counted {
		switch res.status {
		case statusPass:
			passed++
		case statusFail:
			failed++
			failures = append(failures, res)
		case failsOnBaseline:
			skipped++
			shared = append(shared, res)
		default:
			skipped++
		}
	}
	for i, res := range failures {
		if i == maxListedFailures {
			fmt.Fprintf(w, "  ... and %d more failures in %s\n", len(failures)-i, out)
			break
		}
		fmt.Fprintf(w, "FAIL %s %s: %s\n", res.pkg, res.name, res.reason)
	}
	if len(shared) > 0 {
		fmt.Fprintf(w, "fail on etcd too (counted as skipped):\n")
		for _, res := range shared {
			fmt.Fprintf(w, "  %s %s\n", res.pkg, res.name)
		}
	}
	fmt.Fprintf(w, "per-test results: %s\n", out)
	fmt.Fprintf(w, "e2e-etcd: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
}
