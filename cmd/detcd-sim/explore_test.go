package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/detcd/detcd/sim"
)

// beMain makes the test binary run as detcd-sim, so that explore can start
// it as its child runs.
const beMain = "DETCD_SIM_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(beMain) != "" {
		main()
	}
	os.Exit(m.Run())
}

func TestShardFlag(t *testing.T) {
	for _, tc := range []struct {
		in        string
		index, of uint64
		ok        bool
	}{
		{"0/1", 0, 1, true},
		{"2/4", 2, 4, true},
		{"19/20", 19, 20, true},
		{"4/4", 0, 0, false},
		{"1/0", 0, 0, false},
		{"x/2", 0, 0, false},
		{"3", 0, 0, false},
		{"-1/2", 0, 0, false},
	} {
		var s shard
		err := s.Set(tc.in)
		if (err == nil) != tc.ok || s.index != tc.index || s.of != tc.of {
			t.Errorf("Set(%q) = %+v, %v; want %d/%d ok=%v", tc.in, s, err, tc.index, tc.of, tc.ok)
		}
	}
}

// TestShardsSplitSeeds: the shards of a seed range are disjoint and
// together cover it.
func TestShardsSplitSeeds(t *testing.T) {
	const start, count = 1000, 103
	for _, n := range []uint64{1, 2, 3, 7, 200} {
		var all []uint64
		for i := range n {
			sh := shard{index: i, of: n}
			for k := uint64(0); ; k++ {
				s := sh.seed(start, k)
				if s >= start+count {
					break
				}
				all = append(all, s)
			}
		}
		slices.Sort(all)
		if len(all) != count || all[0] != start || slices.Compact(all)[count-1] != start+count-1 || len(slices.Compact(all)) != count {
			t.Fatalf("%d shards cover %d seeds (%v...), want %d..%d once each", n, len(all), all[:min(5, len(all))], start, start+count-1)
		}
	}
}

// detcdSim runs this test binary as detcd-sim and returns its output and
// exit code.
func detcdSim(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), beMain+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// TestExploreShardFailures: a shard runs its seeds only, and writes each
// failure as a seed file that replays it, next to its pages, and shrinks
// it. The runs fail cheaply: their liveness bound is too short.
func TestExploreShardFailures(t *testing.T) {
	dir := t.TempDir()
	out, code := detcdSim(t, "explore", "--seeds", "4", "--start", "1", "--shard", "1/2", "--parallel", "1",
		"--duration", "8s", "--liveness", "1us", "--failures", dir, "--shrink", "1m")
	if code != 1 || !strings.Contains(out, "explored 2 seeds (2..4, shard 1/2") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	seeds, err := filepath.Glob(filepath.Join(dir, "*.seed"))
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, p := range seeds {
		sf, err := sim.ReadSeedFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, sf.Options.Seed)
		if sf.Expect != "fail: liveness" || !strings.HasPrefix(filepath.Base(p), reportBase(sf.Options)) {
			t.Errorf("%s: expect %q, name not from its options %q", p, sf.Expect, reportBase(sf.Options))
		}
		base := strings.TrimSuffix(p, ".seed")
		for _, page := range []string{base + ".timeline.html", base + ".history.html"} {
			if _, err := os.Stat(page); err != nil {
				t.Error(err)
			}
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []uint64{2, 4}) {
		t.Fatalf("seed files for seeds %v, want 2 and 4:\n%s", got, out)
	}
	if !regexp.MustCompile(`\n  shrunk: 1 of [2-9]\d* faults still fail with "liveness".*\n  shrunk replay: detcd-sim run --seed [24] .* --at \d+us:`).MatchString(out) {
		t.Errorf("no shrink reported:\n%s", out)
	}
	replay, code := detcdSim(t, append([]string{"replay"}, seeds...)...)
	if code != 0 || strings.Count(replay, "ok ") != 2 {
		t.Fatalf("replaying the seed files: exit %d\n%s", code, replay)
	}
}

// TestExploreStopAtFirst: --stop-at-first starts no seed after a failure
// (make mutants times the first catch with it).
func TestExploreStopAtFirst(t *testing.T) {
	out, code := detcdSim(t, "explore", "--seeds", "10", "--start", "1", "--parallel", "1", "--duration", "2s",
		"--liveness", "1us", "--failures", t.TempDir(), "--shrink", "0", "--stop-at-first")
	if code != 1 || strings.Count(out, "FAIL seed ") != 1 || !strings.Contains(out, "explored 1 seeds (1..1)") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestExploreShardNeedsStart(t *testing.T) {
	out, code := detcdSim(t, "explore", "--seeds", "4", "--shard", "1/2")
	if code != 2 || !strings.Contains(out, "--shard needs --start") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
