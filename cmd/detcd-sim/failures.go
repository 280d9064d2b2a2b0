package main

import (
	"fmt"
	"hash/fnv"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/detcd/detcd/sim"
)

// shrinkRunsMax bounds the runs one shrink may take, whatever its time.
const shrinkRunsMax = 200

// shard is one of N disjoint slices of the seed space: seeds start+I,
// start+I+N, start+I+2N, ...
type shard struct{ index, of uint64 }

func (s *shard) String() string {
	if s.of == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.index, s.of)
}

func (s *shard) Set(v string) error {
	i, n, ok := strings.Cut(v, "/")
	index, err1 := strconv.ParseUint(i, 10, 64)
	of, err2 := strconv.ParseUint(n, 10, 64)
	if !ok || err1 != nil || err2 != nil || of == 0 || index >= of {
		return fmt.Errorf("want I/N with 0 <= I < N, got %q", v)
	}
	s.index, s.of = index, of
	return nil
}

// seed is the shard's k-th seed counting from start.
func (s shard) seed(start, k uint64) uint64 {
	if s.of <= 1 {
		return start + k
	}
	return start + k*s.of + s.index
}

func (s shard) describe() string {
	if s.of <= 1 {
		return ""
	}
	return fmt.Sprintf(", shard %d/%d", s.index, s.of)
}

// reportBase names a run's files: its seed and a hash of every option, so
// that files from many machines and runs merge by copying.
func reportBase(o sim.Options) string {
	h := fnv.New32a()
	io.WriteString(h, o.String())
	return fmt.Sprintf("seed-%d-%08x", o.Seed, h.Sum32())
}

// failureWriter keeps explore's failures: a seed file and the pages for
// each, and the shrunk schedule.
type failureWriter struct {
	self   string
	dir    string
	shrink time.Duration
}

// write keeps a failed run (res is nil if the run crashed with runErr)
// and returns the lines to print.
func (f failureWriter) write(o sim.Options, res *sim.Result, runErr error) string {
	var b strings.Builder
	if res != nil {
		o = res.Options // the world the seed drew, pinned
	}
	base := reportBase(o)
	why, expect := "", "pass" // a crash replays as a crash: keep it, to pass once fixed
	if runErr != nil {
		why = runErr.Error()
	} else {
		why, expect = res.Failures[0], expectOf(res)
	}
	fmt.Fprintf(&b, "FAIL seed %d: %s\n  replay: detcd-sim run %s --trace trace.txt\n", o.Seed, why, o)
	note := "detcd-sim explore found this failure: " + why
	if res != nil {
		printPages(&b, sim.ReportPathsFor(f.dir, base))
		if f.shrink > 0 {
			s, err := sim.Shrink(o, res, func(o sim.Options) (*sim.Result, error) { return runChild(f.self, o, "") }, sim.ShrinkBudget{Runs: shrinkRunsMax, Time: f.shrink})
			if err != nil {
				fmt.Fprintf(&b, "  shrink: %v\n", err)
			} else {
				printShrunk(&b, s)
				if s.Reproduced && s.To < s.From {
					note += "\nShrunk to " + s.String() + ":\n  detcd-sim run " + s.Options.String()
				}
			}
		}
	}
	path := filepath.Join(f.dir, base+".seed")
	if err := sim.WriteSeedFile(path, note, o, expect, commit()); err != nil {
		fmt.Fprintf(&b, "  seed file: %v\n", err)
	} else {
		fmt.Fprintf(&b, "  seed file: %s\n", path)
	}
	return b.String()
}

func printPages(w io.Writer, p sim.ReportPaths) {
	if p.Timeline == "" {
		return
	}
	fmt.Fprintf(w, "  timeline: %s\n  history:  %s\n", p.Timeline, p.History)
}

func printShrunk(w io.Writer, s sim.Shrunk) {
	fmt.Fprintf(w, "  shrunk: %s\n", s)
	if s.Reproduced && s.To < s.From {
		fmt.Fprintf(w, "  shrunk replay: detcd-sim run %s --trace trace.txt\n", s.Options)
	}
}
