package sim

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// A Runner runs one set of options to its result: in this process, or in
// a child process (raft's randomness is process-global, so only one world
// may run in a process at a time).
type Runner func(Options) (*Result, error)

// ShrinkBudget bounds a shrink: at most Runs runs and about Time of wall
// time (a run under way finishes), whichever comes first.
type ShrinkBudget struct {
	Runs int
	Time time.Duration
}

// Shrunk is what a shrink found.
type Shrunk struct {
	// Options replay the failure with the smallest schedule found; they
	// are the original options when Reproduced is false.
	Options Options
	// Kind is the failure kind every kept schedule reproduced.
	Kind string
	// From and To count the faults before and after.
	From, To int
	// Reproduced says the recorded schedule, replayed on its own, failed
	// the same way; shrinking starts only from there.
	Reproduced bool
	// Runs is how many runs the shrink took; Exhausted says the budget
	// ran out before every single fault had been tried.
	Runs      int
	Exhausted bool
}

func (s Shrunk) String() string {
	switch {
	case s.From == 0:
		return "no faults were injected: nothing to shrink"
	case !s.Reproduced:
		return fmt.Sprintf("the %d recorded faults, replayed as a schedule, do not fail with %q: not shrunk", s.From, s.Kind)
	case s.Exhausted:
		return fmt.Sprintf("%d of %d faults still fail with %q (budget spent after %d runs; smaller may exist)", s.To, s.From, s.Kind, s.Runs)
	}
	return fmt.Sprintf("%d of %d faults still fail with %q (%d runs)", s.To, s.From, s.Kind, s.Runs)
}

var (
	numberRe = regexp.MustCompile(`[0-9]+`)
	memberRe = regexp.MustCompile(`\bmN\b`)
)

// FailureKind names the check a failure message comes from: the message up
// to its first ": ", with numbers and member names blanked, so that "two
// leaders in term 7: m1 and m2" and "two leaders in term 9: m3 and m1"
// are the same kind.
func FailureKind(msg string) string {
	head, _, _ := strings.Cut(msg, ": ")
	head = numberRe.ReplaceAllString(head, "N")
	return memberRe.ReplaceAllString(head, "mN")
}

// failsWith reports whether a result has a failure of kind.
func failsWith(r *Result, kind string) bool {
	return slices.ContainsFunc(r.Failures, func(f string) bool { return FailureKind(f) == kind })
}

// Shrink cuts down the faults of a failed run to fewer that still fail
// with the same kind of failure as its first, by delta debugging: replay
// the recorded faults as an explicit schedule (same seed, same options),
// then try dropping halves, quarters, ... down to single faults, keeping
// each drop after which the run still fails that way. A schedule keeps at
// least one fault: an empty one would mean the seed's own faults.
func Shrink(o Options, failed *Result, run Runner, b ShrinkBudget) (Shrunk, error) {
	s := Shrunk{Options: o, Kind: FailureKind(failed.Failures[0]), From: len(failed.Injected)}
	s.To = s.From
	if s.From == 0 {
		return s, nil // nothing to shrink: the failure needs no fault
	}
	began := time.Now()
	spent := func() bool { return s.Runs >= b.Runs || time.Since(began) >= b.Time }
	fails := func(sched []ScheduledFault) (bool, error) {
		c := o
		c.Schedule = sched
		s.Runs++
		r, err := run(c)
		if err != nil {
			return false, err
		}
		return failsWith(r, s.Kind), nil
	}
	cur := slices.Clone(failed.Injected)
	ok, err := fails(cur)
	if err != nil || !ok {
		return s, err
	}
	s.Reproduced = true
	for n := 2; len(cur) >= 2; {
		if spent() {
			s.Exhausted = true
			break
		}
		dropped, err := dropChunk(cur, n, fails, spent)
		if err != nil {
			return s, err
		}
		if dropped != nil {
			cur, n = dropped, max(n-1, 2)
			continue
		}
		if spent() {
			s.Exhausted = true
			break
		}
		if n >= len(cur) {
			break // no single fault can go
		}
		n = min(2*n, len(cur))
	}
	s.Options.Schedule, s.To = cur, len(cur)
	return s, nil
}

// dropChunk splits sched into n chunks and returns sched without the first
// chunk whose removal still fails, or nil if none does (or the budget ran
// out).
func dropChunk(sched []ScheduledFault, n int, fails func([]ScheduledFault) (bool, error), spent func() bool) ([]ScheduledFault, error) {
	for i := 0; i < n; i++ {
		lo, hi := i*len(sched)/n, (i+1)*len(sched)/n
		if lo == hi {
			continue
		}
		if spent() {
			return nil, nil
		}
		cand := slices.Concat(sched[:lo], sched[hi:])
		ok, err := fails(cand)
		if err != nil {
			return nil, err
		}
		if ok {
			return cand, nil
		}
	}
	return nil, nil
}
