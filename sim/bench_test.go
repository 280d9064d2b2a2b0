package sim

import (
	"os"
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
