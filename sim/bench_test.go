package sim

import (
	"os"
	"strconv"
	"testing"
)

// BenchmarkDefaultWorld runs the default world (detcd-sim run --seed N)
// for seeds 1..b.N: `go test -bench DefaultWorld -cpuprofile` shows where
// the simulator spends its time.
func BenchmarkDefaultWorld(b *testing.B) {
	for i := 0; i < b.N; i++ {
		o := DefaultOptions()
		o.Seed = uint64(i + 1)
		if a := os.Getenv("SIM_AUTH_ON"); a != "" {
			o.AuthOn = a
		}
		w, err := New(o, nil)
		if err != nil {
			b.Fatal(err)
		}
		if res := w.Run(); !res.OK() {
			b.Fatalf("seed %d: %v", o.Seed, res.Failures)
		}
	}
}

// BenchmarkDrawnWorld runs the world detcd-sim run --seed $SIM_SEED draws
// (seed 13 by default: 208 clients, the kind of world that takes most of
// an explore's time), b.N times.
func BenchmarkDrawnWorld(b *testing.B) {
	seed := uint64(13)
	if s := os.Getenv("SIM_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		seed = n
	}
	for i := 0; i < b.N; i++ {
		o := SwarmOptions()
		o.Seed = seed
		w, err := New(o, nil)
		if err != nil {
			b.Fatal(err)
		}
		if res := w.Run(); !res.OK() {
			b.Fatalf("seed %d: %v", o.Seed, res.Failures)
		}
	}
}
