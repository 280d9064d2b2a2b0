//go:build detcdbugs

package sim

import (
	"testing"
	"time"

	"github.com/detcd/detcd/core"
)

// plantedBugSeedsMax bounds how many seeds the simulator may need to catch
// a planted bug.
const plantedBugSeedsMax = 40

// TestPlantedBugs proves the checkers bite: each planted bug must make
// some run fail within a bounded number of seeds.
func TestPlantedBugs(t *testing.T) {
	mixes := map[string]string{
		core.BugAckBeforeFsync: "powerloss,crash,torn,slowdisk",
		core.BugStaleRead:      "partition,oneway",
	}
	for _, bug := range core.PlantedBugs {
		t.Run(bug, func(t *testing.T) {
			faults, err := ParseFaults(mixes[bug])
			if err != nil {
				t.Fatal(err)
			}
			for seed := uint64(1); seed <= plantedBugSeedsMax; seed++ {
				o := DefaultOptions()
				o.Seed, o.Duration, o.Faults, o.PlantedBug = seed, 20*time.Second, faults, bug
				if res := run(t, o); !res.OK() {
					t.Logf("caught at seed %d: %s", seed, res.Failures[0])
					return
				}
			}
			t.Fatalf("%d seeds did not catch planted bug %s", plantedBugSeedsMax, bug)
		})
	}
}
