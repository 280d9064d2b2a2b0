package sim

import (
	"strings"
	"testing"
)

// TestCorruptChecksRun: with the corruption checks on, members run them
// under every fault (the periodic rounds finish, restarting members pass
// the initial check), no check raises a false alarm, and the run replays
// to the same trace.
func TestCorruptChecksRun(t *testing.T) {
	rounds := map[string]int{}
	for seed := uint64(1); seed <= 4; seed++ {
		o := short(seed)
		o.CorruptCheck = "on"
		res, trace := runTraced(t, o, nil)
		if !res.OK() {
			t.Fatalf("seed %d: %v", seed, res.Failures)
		}
		for _, line := range []string{"finished peer corruption check", "initial corruption checking passed"} {
			rounds[line] += strings.Count(trace, line)
		}
		if seed == 1 {
			if again, _ := runTraced(t, o, nil); again.TraceHash != res.TraceHash {
				t.Fatalf("seed 1 replays to trace %s, then %s", res.TraceHash, again.TraceHash)
			}
		}
	}
	for line, n := range rounds {
		if n == 0 {
			t.Errorf("no %q in 4 runs with the corruption checks on", line)
		}
	}
}
