//go:build detcdbugs

package sim

import (
	"testing"
	"time"

	"github.com/detcd/detcd/core"
)

// TestPlantedBugsShrink (named so that make test's -run TestPlantedBugs
// runs it): a run with many faults that catches a planted bug shrinks to
// fewer faults that still fail the same way, and the shrunk options
// replay that failure.
func TestPlantedBugsShrink(t *testing.T) {
	for _, tc := range []struct {
		bug    string
		seed   uint64
		faults Faults
	}{
		{core.BugAckBeforeFsync, 4, FaultCrash | FaultTorn | FaultSlowDisk | FaultPowerLoss},
		{core.BugStaleRead, 2, FaultPartition | FaultOneWay},
	} {
		t.Run(tc.bug, func(t *testing.T) {
			o := DefaultOptions()
			o.Seed, o.Duration, o.PlantedBug, o.Faults = tc.seed, 20*time.Second, tc.bug, tc.faults
			// The seeds were picked for runs without auth, corruption
			// checks, a large store or lock clients.
			o.AuthOn, o.CorruptCheck, o.LargeStore, o.LockClients = "off", "off", "off", 0
			failed := run(t, o)
			if failed.OK() || len(failed.Injected) < 4 {
				t.Fatalf("the planted bug's run passed or had few faults (%d): %v", len(failed.Injected), failed.Failures)
			}
			inProcess := func(o Options) (*Result, error) { return run(t, o), nil }
			s, err := Shrink(o, failed, inProcess, ShrinkBudget{Runs: 40, Time: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s\n  detcd-sim run %s", s, s.Options)
			if !s.Reproduced || s.To >= s.From || len(s.Options.Schedule) != s.To {
				t.Fatalf("not shrunk: %s", s)
			}
			if again := run(t, s.Options); !failsWith(again, s.Kind) {
				t.Fatalf("the shrunk schedule does not fail with %q: %v", s.Kind, again.Failures)
			}
		})
	}
}
