package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/detcd/detcd/sim"
)

// cmdExplore runs many seeds, each in its own process (raft's randomness
// is process-global, so worlds cannot share one), a few at a time.
func cmdExplore(args []string) int {
	fs := flag.NewFlagSet("explore", flag.ContinueOnError)
	o := sim.SwarmOptions()
	o.Duration = 30 * time.Second
	finish := o.RegisterFlags(fs)
	seeds := fs.Int("seeds", 0, "run this many seeds")
	budget := fs.Duration("time", 0, "run seeds until this much wall time has passed")
	parallel := fs.Int("parallel", 2, "runs at a time")
	start := fs.Uint64("start", 0, "first seed (default: drawn from the clock, and printed)")
	var sh shard
	fs.Var(&sh, "shard", "run only shard `I/N` of the seeds (I in 0..N-1): N machines with the same --start run disjoint seeds")
	failDir := fs.String("failures", "sim-failures", "write each failure here: a seed file that replays it, and its timeline and history pages")
	shrinkTime := fs.Duration("shrink", time.Minute, "shrink each failure's fault schedule for up to this much wall time (0: do not)")
	stopAtFirst := fs.Bool("stop-at-first", false, "start no more seeds after the first failure (runs under way finish)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := finish(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if *seeds <= 0 && *budget <= 0 {
		fmt.Fprintln(os.Stderr, "detcd-sim explore: give --seeds N or --time D")
		return 2
	}
	if *start == 0 && sh.of > 1 {
		fmt.Fprintln(os.Stderr, "detcd-sim explore: --shard needs --start, the same on every shard")
		return 2
	}
	if *start == 0 {
		*start = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	if err := os.MkdirAll(*failDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("detcd-sim explore: seeds from %d%s, %s, %d at a time; failures into %s\n", *start, sh.describe(), o, *parallel, *failDir)
	began := time.Now()
	var (
		mu       sync.Mutex
		runs     int
		failures int
		simUs    int64
		taken    uint64
		first    = sh.seed(*start, 0)
		last     = first
		wg       sync.WaitGroup
	)
	take := func() (uint64, bool) {
		mu.Lock()
		defer mu.Unlock()
		s := sh.seed(*start, taken)
		if *seeds > 0 && s >= *start+uint64(*seeds) || *budget > 0 && time.Since(began) > *budget || *stopAtFirst && failures > 0 {
			return 0, false
		}
		taken++
		last = s
		return s, true
	}
	fx := failureWriter{self: self, dir: *failDir, shrink: *shrinkTime}
	for range *parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed, ok := take()
				if !ok {
					return
				}
				ro := o
				ro.Seed = seed
				res, err := runChild(self, ro, *failDir)
				var report string
				if err != nil || !res.OK() {
					report = fx.write(ro, res, err) // outside the lock: shrinking takes a while
				}
				mu.Lock()
				runs++
				if report != "" {
					failures++
					fmt.Print(report)
				}
				if res != nil {
					simUs += res.Stats.SimulatedUs
				}
				if runs%50 == 0 {
					fmt.Fprintf(os.Stderr, "... %d runs, %d failures, %v\n", runs, failures, time.Since(began).Round(time.Second))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("explored %d seeds (%d..%d%s): %.2f simulated hours in %v; %d failures\n",
		runs, first, last, sh.describe(), float64(simUs)/3.6e9, time.Since(began).Round(time.Second), failures)
	if failures > 0 {
		return 1
	}
	return 0
}

// runChild runs options in a child process; a failing run writes its
// pages into reportDir ("" for none).
func runChild(self string, o sim.Options, reportDir string) (*sim.Result, error) {
	args := append([]string{"run", "--json", "--report", reportDir}, splitFlags(o)...)
	cmd := exec.Command(self, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	var res sim.Result
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
		if err == nil {
			err = jerr
		}
		return nil, fmt.Errorf("run crashed: %v: %s", err, lastLine(stderr.String()))
	}
	return &res, nil
}

func splitFlags(o sim.Options) []string {
	var out []string
	for _, f := range bytes.Fields([]byte(o.String())) {
		out = append(out, string(f))
	}
	return out
}

func lastLine(s string) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(s)), []byte("\n"))
	return string(lines[len(lines)-1])
}

func readBuildInfo() (string, bool) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "", false
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12], true
		}
	}
	return "", false
}

func sortedKeys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
