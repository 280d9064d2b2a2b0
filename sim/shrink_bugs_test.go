//go:build detcdbugs

package sim

import (
	"testing"
	"time"

	"github.com/detcd/detcd/core"
)

// TestShrinkPlantedBug: a run with many faults that catches a planted bug
// shrinks to fewer faults that still fail the same way, and the shrunk
// options replay that failure.
func TestShrinkPlantedBug(t *testing.T) {
	o := DefaultOptions()
	o.Seed, o.Duration, o.PlantedBug = 10, 20*time.Second, core.BugAckBeforeFsync
	o.Faults = FaultCrash | FaultTorn | FaultSlowDisk | FaultPowerLoss
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
}
