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
