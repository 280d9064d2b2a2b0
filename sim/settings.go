package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/detcd/detcd/core"

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
	// Weights are the workload's odds of each operation kind.
	Weights [opKindsEnd]int
	// CompactLag bounds how far below the newest revision seen a client
	// compacts.
	CompactLag int64
	// Compaction is the members' auto compaction: "never", "periodic"
	// (keeping CompactRetention ticks) or "revision" (keeping
	// CompactRetention revisions, checked every CompactIntervalTicks).
	Compaction                             string
	CompactRetention, CompactIntervalTicks int64
	// LeaseCheckpointTicks is how often the leader checkpoints remaining
	// lease TTLs; LeaseTTLMax bounds the TTLs lease clients ask for, so
	// leases live through checkpoints and leader changes.
	LeaseCheckpointTicks int64
	LeaseTTLMax          int64
	// FaultWeights are the odds of each fault kind (by bit position).
	FaultWeights [faultKinds]int
	// The corruption checks (corruptcheck.go): a restarting member's
	// initial check, and how often the leader runs the periodic and the
	// compaction hash checks (0: never).
	InitialCorruptCheck                bool
	CorruptCheckUs, CompactHashCheckUs int64
	// QuotaBytes is the members' backend quota; 0 is etcd's default.
	// Runs with operators may draw a small one, so that the workload
	// raises the NOSPACE alarm and the operators recover from it.
	QuotaBytes int64
	// DiskBytesPerSec is the disks' streaming rate: a snapshot from the
	// leader is written and then loaded at it (snapbw.go).
	DiskBytesPerSec int64
	// StorePrefillBytes is, in large-store worlds, how much the store
	// holds beyond what the workload writes, counted in snapshot sizes
	// only (snapbw.go); 0 elsewhere.
	StorePrefillBytes int64
	// RestoreEveryUs is, in worlds that restore (restore.go), the mean
	// time between an operator's restores of the whole cluster from its
	// newest backup; 0 elsewhere.
	RestoreEveryUs int64
	// WatchBatchGapUs and WatchBusyOuts are the members' watch batching
	// (driver.FrontendConfig): a stream whose last batch held at least
	// WatchBusyOuts responses of two revisions or more waits out the gap
	// before its next. 0: off.
	WatchBatchGapUs int64
	WatchBusyOuts   int
}

// faultKinds counts the fault kinds.
const faultKinds = 14

// opWeightsBase are the mean odds of each operation kind.
var opWeightsBase = [opKindsEnd]int{opPut: 25, opGet: 20, opGetSerializable: 8, opDelete: 6, opCAS: 12, opMultiPut: 5,
	opRangeGroup: 8, opDeleteGroup: 2, opTxn: 10, opRangeAt: 5, opCompact: 1}

// compactionModes are the auto compaction policies a run may draw.
var compactionModes = []string{"never", "periodic", "revision"}

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
		// More clients get more groups, so porcupine's search per group
		// stays small.
		KeyGroups:    int(between(4, 12)) + o.Clients/8,
		KeysPerGroup: int(between(1, 3)),
	}
	for k, b := range opWeightsBase {
		s.Weights[k] = int(between(0, int64(2*b)))
	}
	s.Weights[opPut]++ // never all zero
	s.CompactLag = between(0, 200)
	mode := compactionModes[[]int{0, 0, 1, 2}[r.IntN(4)]]
	s.Compaction, s.CompactRetention, s.CompactIntervalTicks = "never", between(10, 100), between(10, 50)
	s = s.withCompaction(mode)
	s.LeaseCheckpointTicks = between(5, 100)
	s.LeaseTTLMax = between(5, 30)
	for k := range s.FaultWeights {
		s.FaultWeights[k] = int(between(1, 4))
	}
	o.pin(&s)
	if o.Faults.Has(FaultNetwork) {
		s.Net.LossPerMille = int(between(0, 50))
		s.Net.DupPerMille = int(between(0, 20))
		s.Net.ReorderPerMille = int(between(0, 100))
		s.Net.ReorderUs = between(1_000, 20_000)
		s.Net.TailPerMille = int(between(0, 20))
		s.Net.TailUs = between(10_000, 200_000)
	}
	s.drawCorruptChecks(r, o.CorruptCheck)
	// Drawn last, so that the draws above stay as they were.
	if quota := between(quotaMinBytes, quotaMaxBytes); o.Operators > 0 && r.IntN(2) == 0 {
		s.QuotaBytes = quota
	}
	s.drawSizes(r, o.largeStore())
	if every := between(restoreEveryMinUs, restoreEveryMaxUs); o.restores() {
		s.RestoreEveryUs = every
	}
	// The watch batching is on for two thirds of the seeds, with fewer
	// responses to a busy batch than the server's 64, which streams of a
	// few watchers would never reach.
	if gap, outs := between(2_000, 20_000), int(between(2, 8)); r.IntN(3) > 0 {
		s.WatchBatchGapUs, s.WatchBusyOuts = gap, outs
	}
	return s
}

// quotaMinBytes and quotaMaxBytes bound a drawn quota: above what the
// workload's live keys take after a compaction and a defragmentation
// (a few hundred small keys, on an empty database's 20 KiB), and low
// enough that its writes fill it within seconds to a minute.
const (
	quotaMinBytes = 64 << 10
	quotaMaxBytes = 512 << 10
)

func (s Settings) String() string {
	return fmt.Sprintf("tick %dus election %d ticks; net latency %d-%dus loss %d‰ dup %d‰ reorder %d‰/%dus tail %d‰/%dus; "+
		"fsync %d-%dus; think %d-%dus; client timeout %dus; snapshot-count %d catch-up %d; checkpoint-min %dB; "+
		"fault every ~%dus; %d key groups of %d; workload %s; compact-lag %d; auto-compaction %s; "+
		"lease checkpoint %d ticks, ttl 3-%ds; fault weights %v; %s",
		s.TickUs, s.ElectionTicks, s.Net.LatencyMinUs, s.Net.LatencyMaxUs, s.Net.LossPerMille, s.Net.DupPerMille,
		s.Net.ReorderPerMille, s.Net.ReorderUs, s.Net.TailPerMille, s.Net.TailUs,
		s.FsyncMinUs, s.FsyncMaxUs, s.ThinkMinUs, s.ThinkMaxUs, s.ClientTimeoutUs, s.SnapshotCount, s.CatchUp,
		s.CheckpointMinBytes, s.FaultEveryUs, s.KeyGroups, s.KeysPerGroup, formatWeights(s.Weights), s.CompactLag,
		s.compactionString(), s.LeaseCheckpointTicks, s.LeaseTTLMax, s.FaultWeights, s.sizesString()) + s.corruptChecksString() + s.quotaString() + s.restoreString() + s.watchBatchString()
}

// watchBatchString prints the watch batching; runs without it print as
// before.
func (s Settings) watchBatchString() string {
	if s.WatchBatchGapUs == 0 {
		return ""
	}
	return fmt.Sprintf("; watch batch gap %dus after %d responses", s.WatchBatchGapUs, s.WatchBusyOuts)
}

// quotaString prints a drawn quota; runs without one print as before.
func (s Settings) quotaString() string {
	if s.QuotaBytes == 0 {
		return ""
	}
	return fmt.Sprintf("; quota %dB", s.QuotaBytes)
}

func (s Settings) compactionString() string {
	switch s.Compaction {
	case "periodic":
		return fmt.Sprintf("periodic %d ticks", s.CompactRetention)
	case "revision":
		return fmt.Sprintf("revision %d every %d ticks", s.CompactRetention, s.CompactIntervalTicks)
	}
	return s.Compaction
}

// autoCompaction is the members' auto compaction config.
func (s Settings) autoCompaction() core.AutoCompaction {
	switch s.Compaction {
	case "periodic":
		return core.AutoCompaction{Mode: "periodic", RetentionTicks: s.CompactRetention}
	case "revision":
		return core.AutoCompaction{Mode: "revision", RetentionRevisions: s.CompactRetention, IntervalTicks: s.CompactIntervalTicks}
	}
	return core.AutoCompaction{}
}

// formatWeights prints weights as --weights reads them.
func formatWeights(ws [opKindsEnd]int) string {
	var parts []string
	for k, w := range ws {
		if k > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", opNames[k], w))
		}
	}
	return strings.Join(parts, ",")
}

// parseWeights reads what formatWeights printed; kinds it leaves out get 0.
func parseWeights(v string) ([opKindsEnd]int, error) {
	var ws [opKindsEnd]int
	total := 0
	for _, part := range strings.Split(v, ",") {
		name, n, ok := strings.Cut(strings.TrimSpace(part), "=")
		k := slices.Index(opNames[:], name)
		w, err := strconv.Atoi(n)
		if !ok || k <= 0 || err != nil || w < 0 {
			return ws, fmt.Errorf("sim: bad weight %q (want KIND=N, kinds %s)", part, strings.Join(opNames[1:], ", "))
		}
		ws[k], total = w, total+w
	}
	if total == 0 {
		return ws, fmt.Errorf("sim: weights %q are all zero", v)
	}
	return ws, nil
}

// withCompaction sets the auto compaction mode; a revision retention is
// five times the periodic one's ticks.
func (s Settings) withCompaction(mode string) Settings {
	if s.Compaction == "revision" && mode != "revision" {
		s.CompactRetention /= 5
	}
	if s.Compaction != "revision" && mode == "revision" {
		s.CompactRetention *= 5
	}
	s.Compaction = mode
	return s
}
