package sim

import (
	"flag"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/auth"
)

var fixedSeeds = flag.Int("sim.seeds", 100, "how many fixed seeds TestFixedSeeds runs")

func run(t testing.TB, o Options) *Result {
	t.Helper()
	w, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w.Run()
}

// runPassingTwice runs o, which must pass every check, then again, which
// must give the same trace; it returns the first run's world.
func runPassingTwice(t *testing.T, o Options) *World {
	t.Helper()
	w, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := w.Run()
	if !res.OK() {
		t.Fatalf("%v\n  replay: detcd-sim run %s", res.Failures, o)
	}
	if again := run(t, o); again.TraceHash != res.TraceHash {
		t.Fatalf("seed %d does not replay: trace %s, then %s", o.Seed, res.TraceHash, again.TraceHash)
	}
	return w
}

func short(seed uint64) Options {
	o := DefaultOptions()
	o.Seed, o.Duration = seed, 10*time.Second
	return o
}

// TestDeterminism: the same seed gives the same trace, a different one
// does not.
func TestDeterminism(t *testing.T) {
	a, b, c := run(t, short(7)), run(t, short(7)), run(t, short(8))
	if a.TraceHash != b.TraceHash {
		t.Fatalf("seed 7 twice: %s then %s", a.TraceHash, b.TraceHash)
	}
	if a.TraceHash == c.TraceHash {
		t.Fatalf("seeds 7 and 8 both gave %s", a.TraceHash)
	}
	if a.Stats.Ops == 0 || a.Stats.Messages == 0 {
		t.Fatalf("nothing happened: %+v", a.Stats)
	}
}

// TestFixedSeeds runs a fixed set of seeds under every fault; a failure
// prints the command that replays it.
func TestFixedSeeds(t *testing.T) {
	for seed := uint64(1); seed <= uint64(*fixedSeeds); seed++ {
		o := DefaultOptions()
		o.Seed, o.Duration = seed, 20*time.Second
		if seed%5 == 0 {
			o.Members, o.Clients = 5, 12
		}
		res := run(t, o)
		if !res.OK() {
			t.Errorf("seed %d: %s\n  replay: detcd-sim run %s --trace trace.txt", seed, strings.Join(res.Failures, "; "), o)
		}
	}
}

// TestSeedFiles replays every kept seed in testdata/seeds.
func TestSeedFiles(t *testing.T) {
	paths, err := filepath.Glob("../testdata/seeds/*.seed")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		sf, err := ReadSeedFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if sf.Options.PlantedBug != "" && !core.PlantedBugsAvailable() {
			continue // replayed by the detcdbugs build
		}
		t.Run(filepath.Base(p), func(t *testing.T) {
			if err := sf.Check(run(t, sf.Options)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPropertySchedules lets rapid pick the faults: kinds, members,
// times, durations. A failure shrinks to a small schedule and prints the
// flags that replay it.
func TestPropertySchedules(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		o := DefaultOptions()
		o.Seed = rapid.Uint64Range(1, 1<<20).Draw(rt, "seed")
		o.Duration = 10 * time.Second
		o.Clients = rapid.IntRange(1, 6).Draw(rt, "clients")
		o.Members = rapid.SampledFrom([]int{3, 5}).Draw(rt, "members")
		n := rapid.IntRange(0, 8).Draw(rt, "faults")
		o.Schedule = []ScheduledFault{}
		for i := 0; i < n; i++ {
			o.Schedule = append(o.Schedule, ScheduledFault{
				AtUs:   rapid.Int64Range(0, 9_000_000).Draw(rt, fmt.Sprint("at", i)),
				Kind:   Faults(1) << rapid.IntRange(0, len(faultNames)-1).Draw(rt, fmt.Sprint("kind", i)),
				Member: rapid.IntRange(0, o.Members-1).Draw(rt, fmt.Sprint("member", i)),
				ForUs:  rapid.Int64Range(10_000, 3_000_000).Draw(rt, fmt.Sprint("for", i)),
			})
		}
		w, err := New(o, nil)
		if err != nil {
			rt.Fatal(err)
		}
		res := w.Run()
		if !res.OK() {
			rt.Fatalf("%s\n  replay: detcd-sim run %s --trace trace.txt", strings.Join(res.Failures, "; "), o)
		}
	})
}

// TestAuthClients: administrators changing users, roles and permissions
// under every fault leave the same auth store on every member (the
// convergence check compares it), not an empty one, and the run replays
// to the same trace.
func TestAuthClients(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		o := short(seed)
		o.AuthClients = 2
		w, err := New(o, nil)
		if err != nil {
			t.Fatal(err)
		}
		res := w.Run()
		if !res.OK() {
			t.Fatalf("seed %d: %s\n  replay: detcd-sim run %s --trace trace.txt", seed, strings.Join(res.Failures, "; "), o)
		}
		if w.members[0].node.AuthHash() == crc32.ChecksumIEEE(auth.New().Marshal()) {
			t.Errorf("seed %d: the auth store is empty after the run", seed)
		}
		if seed == 1 && run(t, o).TraceHash != res.TraceHash {
			t.Fatalf("seed %d with auth clients does not replay", seed)
		}
	}
}

// destroyOptions are runs where faults destroy members' data: an operator
// deletes a WAL, a synced record rots.
func destroyOptions(seed uint64) Options {
	o := DefaultOptions()
	o.Seed, o.Duration = seed, 30*time.Second
	o.Faults = FaultCrash | FaultTorn | FaultPowerLoss | FaultMembership | FaultWALWipe | FaultRot
	return o
}

// TestDestroyedData: a member whose WAL was deleted, or whose synced log
// rotted, refuses to start, and the cluster carries on without it (or
// replaces it) with every acknowledged write; the runs replay.
func TestDestroyedData(t *testing.T) {
	refused := 0
	for seed := uint64(1); seed <= 8; seed++ {
		o := destroyOptions(seed)
		res := run(t, o)
		if !res.OK() {
			t.Errorf("seed %d: %s\n  replay: detcd-sim run %s --trace trace.txt", seed, strings.Join(res.Failures, "; "), o)
		}
		refused += res.Stats.Refused
		if seed == 1 && run(t, o).TraceHash != res.TraceHash {
			t.Fatalf("seed %d with destroyed data does not replay", seed)
		}
	}
	if refused < 4 {
		t.Fatalf("only %d refusals in 8 seeds: the faults do not bite", refused)
	}
}

// TestDestroyedDataScheduled: each kind on its own, at a fixed time, in a
// 3- and a 5-member cluster, under every other fault.
func TestDestroyedDataScheduled(t *testing.T) {
	for _, kind := range []Faults{FaultWALWipe, FaultRot} {
		for _, members := range []int{3, 5} {
			o := short(11)
			o.Members, o.Faults = members, AllFaults|FaultWALWipe|FaultRot
			o.Schedule = []ScheduledFault{{AtUs: 4_000_000, Kind: kind, Member: 1, ForUs: 1_000_000}, {AtUs: 6_000_000, Kind: FaultCrash, Member: 2, ForUs: 500_000}}
			res := run(t, o)
			if !res.OK() || res.Stats.Refused != 1 {
				t.Errorf("%s, %d members: %d refusals, failures %v\n  replay: detcd-sim run %s --trace trace.txt", kind, members, res.Stats.Refused, res.Failures, o)
			}
		}
	}
}

// TestCheckersCatchFreshStart: were a member with its whole member
// directory deleted (no sign of it left) started afresh, the checkers
// flag it; the real faults must make it refuse instead.
func TestCheckersCatchFreshStart(t *testing.T) {
	wipeDir = "data/member"
	defer func() { wipeDir = walDir }()
	o := short(11)
	o.Faults = FaultWALWipe
	o.Schedule = []ScheduledFault{{AtUs: 4_000_000, Kind: FaultWALWipe, Member: 1, ForUs: 1_000_000}}
	res := run(t, o)
	want := []string{"it must refuse to start", "serves less than it acknowledged"}
	for _, w := range want {
		if !strings.Contains(strings.Join(res.Failures, "; "), w) {
			t.Errorf("failures %q do not say %q", res.Failures, w)
		}
	}
}
