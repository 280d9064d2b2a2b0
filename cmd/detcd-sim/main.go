// Command detcd-sim runs detcd's deterministic simulator: run one seed,
// replay seed files, or explore many seeds.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/sim"
)

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	var code int
	switch os.Args[1] {
	case "run":
		code = cmdRun(os.Args[2:])
	case "replay":
		code = cmdReplay(os.Args[2:])
	case "explore":
		code = cmdExplore(os.Args[2:])
	case "bugs":
		code = cmdBugs()
	case "-h", "--help", "help":
		usage(os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "detcd-sim: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		code = 2
	}
	os.Exit(code)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: detcd-sim <command> [flags]

detcd-sim runs a cluster of detcd's real core inside one deterministic
process, under faults and a client workload drawn from a seed, and checks
linearizability, durability, convergence and raft safety. The same seed
replays the same run bit for bit.

Commands:
  run      run one seed:          detcd-sim run --seed 42 [--members 3] [--clients 8] [--duration 60s] [--faults all] [--trace FILE]
  replay   replay seed files:     detcd-sim replay testdata/seeds/*.seed
  explore  run many seeds:        detcd-sim explore --seeds 1000 | --time 10m [--parallel 2] [--shard I/N --start S] [--failures DIR] [--stop-at-first]
  bugs     list the bugs --bug can plant (binaries built with -tags detcdbugs; make mutants runs each)

A failing run writes its timeline and history as HTML pages, and explore
(or run --shrink D) shrinks its fault schedule and prints the shrunk replay.

Run 'detcd-sim <command> --help' for a command's flags.
`)
}

func cmdRun(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	o := sim.SwarmOptions()
	finish := o.RegisterFlags(fs)
	tracePath := fs.String("trace", "", "write the trace (every event) to this file")
	asJSON := fs.Bool("json", false, "print the result as JSON (explore uses this)")
	save := fs.String("save", "", "save the run as a seed file at this path (expecting its outcome)")
	note := fs.String("note", "", "why the seed is kept, for --save")
	reportDir := fs.String("report", "sim-failures", "if the run fails, write its timeline and history as HTML pages into this directory (\"\" for none)")
	shrinkTime := fs.Duration("shrink", 0, "if the run fails, shrink its fault schedule for up to this much wall time and print the shrunk replay")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof reads it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := finish(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var trace io.Writer
	if *tracePath != "" {
		f, err := os.Create(*tracePath)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		trace = f
	}
	w, err := sim.New(o, trace)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	o = w.Options() // the world the seed drew, as flags that pin it
	if !*asJSON {
		fmt.Printf("detcd-sim run %s\nsettings: %s\n", o, w.Settings())
		last := time.Now()
		w.OnProgress = func(now, end int64) {
			if time.Since(last) > 5*time.Second {
				last = time.Now()
				fmt.Fprintf(os.Stderr, "... simulated %ds of %ds\n", now/1e6, end/1e6)
			}
		}
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res := w.Run()
	stopProfile()
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(res)
	} else {
		report(os.Stdout, res)
	}
	if *save != "" {
		if err := sim.WriteSeedFile(*save, *note, o, expectOf(res), commit()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("saved %s\n", *save)
	}
	if res.OK() {
		return 0
	}
	var pages sim.ReportPaths
	if *reportDir != "" {
		if pages, err = writeReport(o, res, *reportDir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if *asJSON {
		return 1
	}
	fmt.Printf("\nFAILED. Replay, with the trace, with:\n  detcd-sim run %s --trace trace.txt\n", o)
	printPages(os.Stdout, pages)
	if *shrinkTime > 0 {
		s, err := sim.Shrink(o, res, runInProcess, sim.ShrinkBudget{Runs: shrinkRunsMax, Time: *shrinkTime})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		printShrunk(os.Stdout, s)
	}
	return 1
}

// startCPUProfile profiles the process into path until the returned stop
// is called; with no path it does nothing. The profile covers only the
// world's run, so its percentages are the simulator's and not the flags'
// parsing or the report's writing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// writeReport runs a failed world again, the same options making the
// same run, with its timeline recorded, and writes its pages into dir.
// Only a failed run pays for the timeline, which would cost every run a
// tenth of its time (a row for every message delivered). The trace hash
// confirms the second run is the first.
func writeReport(o sim.Options, first *sim.Result, dir string) (sim.ReportPaths, error) {
	w, err := sim.New(o, nil)
	if err != nil {
		return sim.ReportPaths{}, fmt.Errorf("report: %w", err)
	}
	w.EnableTimeline()
	again := w.Run()
	pages, err := w.WriteReport(dir, reportBase(o))
	if err != nil {
		return pages, fmt.Errorf("report: %w", err)
	}
	if again.TraceHash != first.TraceHash {
		return pages, fmt.Errorf("report: the run again, to record its timeline, had trace hash %s, the first run %s: the simulator is not deterministic", again.TraceHash, first.TraceHash)
	}
	return pages, nil
}

// expectOf is a seed file's expectation for a result: pass, or the first
// failure's text up to its colon.
func expectOf(res *sim.Result) string {
	if res.OK() {
		return "pass"
	}
	kind, _, _ := strings.Cut(res.Failures[0], ":")
	return "fail: " + kind
}

// runInProcess runs options in this process, one world at a time.
func runInProcess(o sim.Options) (*sim.Result, error) {
	w, err := sim.New(o, nil)
	if err != nil {
		return nil, err
	}
	return w.Run(), nil
}

func report(w io.Writer, r *sim.Result) {
	s := r.Stats
	simSec := float64(s.SimulatedUs) / 1e6
	fmt.Fprintf(w, "ops %d (ok %d, unknown %d, failed %d); messages %d (dropped %d); events %d\n",
		s.Ops, s.OpsOK, s.OpsUnknown, s.OpsFailed, s.Messages, s.Dropped, s.Events)
	fmt.Fprintf(w, "faults injected: %s\n", faultSummary(s.Faults))
	if s.Refused > 0 {
		fmt.Fprintf(w, "members that refused to start on destroyed data, as they must: %d\n", s.Refused)
	}
	fmt.Fprintf(w, "checks: linearizability %s, %d failures\n", r.Linearizability, len(r.Failures))
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  FAIL %s\n", f)
	}
	fmt.Fprintf(w, "simulated %.1fs in %v wall: %.0fx real time\n", simSec, r.Wall.Round(time.Millisecond), simSec/r.Wall.Seconds())
	fmt.Fprintf(w, "trace hash %s\n", r.TraceHash)
}

func faultSummary(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func cmdReplay(args []string) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	tracePath := fs.String("trace", "", "write the trace of the (single) replayed file here")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "detcd-sim replay: name one or more seed files")
		return 2
	}
	code := 0
	for _, path := range fs.Args() {
		sf, err := sim.ReadSeedFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if sf.Options.PlantedBug != "" && !core.PlantedBugsAvailable() {
			fmt.Printf("skip %s (plants %s: needs a build with -tags detcdbugs)\n", path, sf.Options.PlantedBug)
			continue
		}
		var trace io.Writer
		if *tracePath != "" {
			f, err := os.Create(*tracePath)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer f.Close()
			trace = f
		}
		w, err := sim.New(sf.Options, trace)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			code = 1
			continue
		}
		res := w.Run()
		if err := sf.Check(res); err != nil {
			fmt.Printf("FAIL %s (trace %s)\n  %v\n  replay: detcd-sim run %s --trace trace.txt\n", path, res.TraceHash, err, sf.Options)
			code = 1
			continue
		}
		fmt.Printf("ok   %s (expect %s; trace %s; %.0fs simulated in %v)\n", path, sf.Expect, res.TraceHash, float64(res.Stats.SimulatedUs)/1e6, res.Wall.Round(time.Millisecond))
	}
	return code
}

// commit is the VCS revision the binary was built from, if known.
func commit() string {
	if info, ok := readBuildInfo(); ok {
		return info
	}
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return "unknown"
}

// cmdBugs lists the planted bugs, one a line, for make mutants.
func cmdBugs() int {
	if !core.PlantedBugsAvailable() {
		fmt.Fprintln(os.Stderr, "detcd-sim bugs: this binary was built without -tags detcdbugs")
		return 1
	}
	for _, b := range core.PlantedBugs {
		fmt.Println(b)
	}
	return 0
}
