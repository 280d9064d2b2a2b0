//go:build detcdbugs

package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/detcd/detcd/core"
)

// TestPlantedBugsMaintenance (make test's -run TestPlantedBugs runs it):
// a member that hashes one revision less once defragmented is caught by
// the operators' HashKV check, within a bounded number of seeds.
func TestPlantedBugsMaintenance(t *testing.T) {
	for seed := uint64(1); seed <= plantedBugSeedsMax; seed++ {
		o := DefaultOptions()
		o.Seed, o.Duration, o.Operators, o.PlantedBug = seed, 20*time.Second, 2, core.BugMVCCHashSkipsAfterDefrag
		o.CorruptCheck = "off" // the corruption checks would see the divergence first
		res := run(t, o)
		for _, f := range res.Failures {
			if strings.HasPrefix(f, "operator: HashKV") {
				t.Logf("caught at seed %d: %s", seed, f)
				return
			}
		}
	}
	t.Fatalf("%d seeds did not catch planted bug %s with the HashKV check", plantedBugSeedsMax, core.BugMVCCHashSkipsAfterDefrag)
}
