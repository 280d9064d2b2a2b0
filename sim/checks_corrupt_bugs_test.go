//go:build detcdbugs

package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/detcd/detcd/core"
)

// TestPlantedBugsCorrupt proves the corruption checks and their checker
// bite, with the checks on: members whose state diverges silently are
// found by a check (a CORRUPT alarm the checker reports as a divergence),
// and a verdict that counts another compaction as corruption is reported
// as a false alarm.
func TestPlantedBugsCorrupt(t *testing.T) {
	for _, c := range []struct{ bug, want string }{
		{core.BugPutDivergesEvenMember, "the members diverged with no disk fault"},
		{core.BugCorruptCompactRevMismatch, "a false alarm"},
	} {
		t.Run(c.bug, func(t *testing.T) {
			for seed := uint64(1); seed <= plantedBugSeedsMax; seed++ {
				o := DefaultOptions()
				o.Seed, o.Duration, o.CorruptCheck, o.PlantedBug = seed, 20*time.Second, "on", c.bug
				res := run(t, o)
				for _, f := range res.Failures {
					if strings.Contains(f, c.want) {
						t.Logf("caught at seed %d: %s", seed, f)
						return
					}
				}
			}
			t.Fatalf("%d seeds did not catch planted bug %s with the corruption checks", plantedBugSeedsMax, c.bug)
		})
	}
}

// TestPlantedBugsCorruptMissed (named for make test's -run): members
// that diverged and still disagree after the liveness phase fail a run
// whose periodic check raised no alarm. The checks stay off for the run,
// then the checker is asked as if they had been on. (Seed 2: in seed
// 1's world, since the members' health probes, no even member keeps a
// diverged put to the end.)
func TestPlantedBugsCorruptMissed(t *testing.T) {
	o := short(2)
	o.CorruptCheck, o.PlantedBug = "off", core.BugPutDivergesEvenMember
	w, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Run()
	w.checks.failures = nil
	w.settings.CorruptCheckUs = 1_000_000
	w.checks.checkCorruptMissed()
	if len(w.checks.failures) != 1 || !strings.Contains(w.checks.failures[0], "the corruption checks missed a divergence") {
		t.Fatalf("failures %v, want the missed divergence", w.checks.failures)
	}
}
