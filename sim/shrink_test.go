package sim

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestFailureKind(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"two leaders in term 7: m1 and m2", "two leaders in term N"},
		{"m3 applied a different entry at index 675 (term 3)", "mN applied a different entry at index N (term N)"},
		{"m2 panicked: tocommit(1283) is out of range", "mN panicked"},
		{"history is not linearizable: group 1: 191 of its operations", "history is not linearizable"},
		{"durability: g06/k0 acknowledged at revision 1211", "durability"},
		{"client 4 saw revision 9 after 12: c4 get", "client N saw revision N after N"},
	} {
		if got := FailureKind(tc.msg); got != tc.want {
			t.Errorf("FailureKind(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}

// fakeRunner fails with kind "bad" exactly when the schedule holds every
// fault at a time in culprits, and counts its runs.
func fakeRunner(culprits []int64, runs *int) Runner {
	return func(o Options) (*Result, error) {
		*runs++
		for _, c := range culprits {
			if !slices.ContainsFunc(o.Schedule, func(f ScheduledFault) bool { return f.AtUs == c }) {
				return &Result{}, nil
			}
		}
		return &Result{Failures: []string{"bad: again"}}, nil
	}
}

func schedule(n int) []ScheduledFault {
	var s []ScheduledFault
	for i := range n {
		s = append(s, ScheduledFault{AtUs: int64(i), Kind: FaultCrash, ForUs: 1})
	}
	return s
}

// TestShrink: delta debugging finds the faults a failure needs, within its
// budget, and never claims a schedule it did not see fail.
func TestShrink(t *testing.T) {
	for _, tc := range []struct {
		name       string
		faults     int
		culprits   []int64
		budget     ShrinkBudget
		reproduced bool
		want       []int64 // the AtUs of the faults kept
		exhausted  bool
	}{
		{"one culprit of 16", 16, []int64{11}, ShrinkBudget{Runs: 100, Time: time.Minute}, true, []int64{11}, false},
		{"two culprits of 10", 10, []int64{2, 7}, ShrinkBudget{Runs: 100, Time: time.Minute}, true, []int64{2, 7}, false},
		{"every fault needed", 3, []int64{0, 1, 2}, ShrinkBudget{Runs: 100, Time: time.Minute}, true, []int64{0, 1, 2}, false},
		{"not reproduced", 5, []int64{99}, ShrinkBudget{Runs: 100, Time: time.Minute}, false, []int64{0, 1, 2, 3, 4}, false},
		{"budget of 2 runs", 16, []int64{11}, ShrinkBudget{Runs: 2, Time: time.Minute}, true, []int64{8, 9, 10, 11, 12, 13, 14, 15}, true},
		{"no faults", 0, nil, ShrinkBudget{Runs: 100, Time: time.Minute}, false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			failed := &Result{Failures: []string{"bad: first"}, Injected: schedule(tc.faults)}
			runs := 0
			s, err := Shrink(o, failed, fakeRunner(tc.culprits, &runs), tc.budget)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			sched := s.Options.Schedule
			if !s.Reproduced {
				sched = failed.Injected
			}
			for _, f := range sched {
				got = append(got, f.AtUs)
			}
			if s.Reproduced != tc.reproduced || !slices.Equal(got, tc.want) || s.Exhausted != tc.exhausted || s.Runs != runs || runs > tc.budget.Runs {
				t.Fatalf("got %s: kept %v (reproduced %v, exhausted %v, %d runs), want kept %v (reproduced %v, exhausted %v)",
					s, got, s.Reproduced, s.Exhausted, runs, tc.want, tc.reproduced, tc.exhausted)
			}
		})
	}
}

func TestShrinkRunnerError(t *testing.T) {
	boom := errors.New("child crashed")
	failed := &Result{Failures: []string{"bad: first"}, Injected: schedule(4)}
	_, err := Shrink(DefaultOptions(), failed, func(Options) (*Result, error) { return nil, boom }, ShrinkBudget{Runs: 10, Time: time.Minute})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
}
