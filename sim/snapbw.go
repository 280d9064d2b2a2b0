package sim

import (
	"fmt"
	"math/rand/v2"

	"github.com/detcd/detcd/netsim"
)

// Snapshot size and time. A member that fell behind the leader's
// compacted log gets the state as a snapshot: its content crosses the
// network at the link's bandwidth and is written to the receiver's disk
// as it arrives, so the slower of the two sets the pace; the receiver
// then loads it (reads it back and decodes it) at its disk's rate, off
// its loop. Other messages do not pay for their size: at the drawn
// bandwidths a raft message's bytes take microseconds, less than the
// spread of its latency, and charging them would reshuffle every seed's
// run (and the planted bugs' kept seeds) for no new behaviour.
//
// A snapshot's size is its encoded content's real size plus, in
// large-store worlds, a pre-fill: bytes the store is taken to hold beyond
// what the workload wrote, the same on every member. The pre-fill exists
// only in this size model, never in memory or on the simulated disks:
// allocating the GiBs of a real large store would make a run minutes
// long, and what the checkers judge (whether a member that needs many
// election timeouts of transfer catches up without costing the cluster
// its quorum) depends on how long the bytes take, not on what they say.

const (
	// bandwidthMinBytesPerSec is the slowest link drawn, 100 Mbit/s; the
	// fastest is 128 times that.
	bandwidthMinBytesPerSec = 12_500_000
	// diskMinBytesPerSec is the slowest disk drawn; the fastest is 16
	// times that.
	diskMinBytesPerSec = 100_000_000
	// largeStoreElectionsMin and Max bound how many election timeouts a
	// large store's snapshot takes to stream, at the slower of the link
	// and the disk.
	largeStoreElectionsMin, largeStoreElectionsMax = 3, 8
	// storePrefillMaxBytes is etcd's largest quota, 8 GiB.
	storePrefillMaxBytes = 8 << 30
)

// drawSizes draws the link bandwidth and the disks' rate, each roughly
// log-uniform, and, in a large-store world, the pre-fill that makes a
// snapshot take largeStoreElectionsMin..Max election timeouts to stream:
// long enough to outlast many heartbeats, short enough that a member
// catches up well within the liveness bound.
func (s *Settings) drawSizes(r *rand.Rand, large bool) {
	s.Net.BandwidthBytesPerSec = (bandwidthMinBytesPerSec + r.Int64N(bandwidthMinBytesPerSec+1)) << r.IntN(7)
	s.DiskBytesPerSec = (diskMinBytesPerSec + r.Int64N(diskMinBytesPerSec+1)) << r.IntN(4)
	elections := largeStoreElectionsMin + r.Int64N(largeStoreElectionsMax-largeStoreElectionsMin+1)
	if large {
		streamUs := elections * int64(s.ElectionTicks) * s.TickUs
		s.StorePrefillBytes = min(streamUs*min(s.Net.BandwidthBytesPerSec, s.DiskBytesPerSec)/1_000_000, storePrefillMaxBytes)
	}
}

func (s Settings) sizesString() string {
	return fmt.Sprintf("bandwidth %dKB/s disk %dKB/s store pre-fill %dMiB",
		s.Net.BandwidthBytesPerSec/1000, s.DiskBytesPerSec/1000, s.StorePrefillBytes>>20)
}

// largeStore reports whether the store is large: as the option says, or,
// left empty, for a quarter of the seeds (a hash of the seed, so no
// component's draws shift).
func (o Options) largeStore() bool {
	switch o.LargeStore {
	case "on":
		return true
	case "off":
		return false
	}
	return seedHash(o.Seed^0x5b1a)%4 == 0
}

// snapshotBytes is the size a snapshot with size bytes of content has in
// the model: the pre-fill counts.
func (w *World) snapshotBytes(size int64) int64 { return size + w.settings.StorePrefillBytes }

// snapshotArrives decides when a snapshot of size bytes (snapshotBytes)
// sent now from one member to another, sentBytes of them over the link
// (the rest held from a partial, snapresume.go), is on the target's disk,
// sealed: after its transfer over the link and its write at the target's
// disk rate, which overlap, and the slowest fsync (a fixed one: drawing it
// would shift the target's draws, and with them every later fsync). It is
// lost if the link loses it.
func (w *World) snapshotArrives(from, to *member, sentBytes, size int64) (int64, bool) {
	times := w.net.SendBytes(from.id, to.id, w.now, sentBytes)
	if len(times) == 0 {
		return 0, false
	}
	written := w.now + netsim.TransferUs(size, w.settings.DiskBytesPerSec)
	return max(times[0], written) + w.settings.FsyncMaxUs*to.slow, true
}
