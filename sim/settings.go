package sim

import (
	"fmt"
	"math/rand/v2"

	"github.com/detcd/detcd/netsim"
)

// Settings are the run's randomized parameters, drawn from the seed so
// that runs explore many shapes of world. They are printed at the start of
// every run.
type Settings struct {
	TickUs        int64
	ElectionTicks int
	Net           netsim.Config
	// FsyncUs bounds a log fsync's latency; slow disks multiply it.
	FsyncMinUs, FsyncMaxUs int64
	// ThinkUs bounds a client's pause between operations.
	ThinkMinUs, ThinkMaxUs int64
	// ClientTimeoutUs is how long a client waits for an answer.
	ClientTimeoutUs int64
	// SnapshotCount and CatchUp are small, so that raft log compaction
	// and snapshots to lagging members happen in short runs.
	SnapshotCount, CatchUp uint64
	// CheckpointMinBytes is small, so that checkpoints happen too.
	CheckpointMinBytes int64
	// FaultEveryUs is the mean time between faults.
	FaultEveryUs int64
	// KeyGroups and KeysPerGroup shape the key space: an operation touches
	// one group, so histories partition by group.
	KeyGroups, KeysPerGroup int
}

func drawSettings(r *rand.Rand, o Options) Settings {
	between := func(lo, hi int64) int64 { return lo + r.Int64N(hi-lo+1) }
	s := Settings{
		TickUs:        100_000,
		ElectionTicks: 10,
		Net: netsim.Config{
			LatencyMinUs: between(100, 500),
			LatencyMaxUs: between(1_000, 5_000),
		},
		FsyncMinUs:         between(100, 500),
		FsyncMaxUs:         between(1_000, 10_000),
		ThinkMinUs:         between(1_000, 10_000),
		ThinkMaxUs:         between(20_000, 100_000),
		ClientTimeoutUs:    between(1_000_000, 5_000_000),
		SnapshotCount:      uint64(between(50, 500)),
		CatchUp:            uint64(between(10, 100)),
		CheckpointMinBytes: between(16<<10, 256<<10),
		FaultEveryUs:       between(1_000_000, 5_000_000),
		KeyGroups:          int(between(4, 12)),
		KeysPerGroup:       int(between(1, 3)),
	}
	if o.Faults.Has(FaultNetwork) {
		s.Net.LossPerMille = int(between(0, 50))
		s.Net.DupPerMille = int(between(0, 20))
		s.Net.ReorderPerMille = int(between(0, 100))
		s.Net.ReorderUs = between(1_000, 20_000)
		s.Net.TailPerMille = int(between(0, 20))
		s.Net.TailUs = between(10_000, 200_000)
	}
	return s
}

func (s Settings) String() string {
	return fmt.Sprintf("tick %dus election %d ticks; net latency %d-%dus loss %d‰ dup %d‰ reorder %d‰/%dus tail %d‰/%dus; "+
		"fsync %d-%dus; think %d-%dus; client timeout %dus; snapshot-count %d catch-up %d; checkpoint-min %dB; "+
		"fault every ~%dus; %d key groups of %d",
		s.TickUs, s.ElectionTicks, s.Net.LatencyMinUs, s.Net.LatencyMaxUs, s.Net.LossPerMille, s.Net.DupPerMille,
		s.Net.ReorderPerMille, s.Net.ReorderUs, s.Net.TailPerMille, s.Net.TailUs,
		s.FsyncMinUs, s.FsyncMaxUs, s.ThinkMinUs, s.ThinkMaxUs, s.ClientTimeoutUs, s.SnapshotCount, s.CatchUp,
		s.CheckpointMinBytes, s.FaultEveryUs, s.KeyGroups, s.KeysPerGroup)
}
