package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/detcd/detcd/netsim"
)

// TestDrawSizes: bandwidth and disk rate stay in their ranges; a large
// store's snapshot streams in 3-8 election timeouts at the slower of the
// two (less where the 8 GiB cap cuts it), a small one has no pre-fill;
// left to the seed, about a quarter of the worlds have a large store.
func TestDrawSizes(t *testing.T) {
	const seeds = 400
	large := 0
	for _, mode := range []string{"on", "off", ""} {
		for seed := uint64(1); seed <= seeds; seed++ {
			o := DefaultOptions()
			o.Seed, o.LargeStore = seed, mode
			w, err := New(o, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := w.Settings()
			bw, disk := s.Net.BandwidthBytesPerSec, s.DiskBytesPerSec
			if bw < bandwidthMinBytesPerSec || bw > 2*bandwidthMinBytesPerSec<<6 || disk < diskMinBytesPerSec || disk > 2*diskMinBytesPerSec<<3 {
				t.Fatalf("seed %d: bandwidth %d B/s, disk %d B/s out of range", seed, bw, disk)
			}
			electionUs := int64(s.ElectionTicks) * s.TickUs
			streamUs := netsim.TransferUs(s.StorePrefillBytes, min(bw, disk))
			switch {
			case s.StorePrefillBytes == 0:
				if mode == "on" {
					t.Fatalf("seed %d: --large-store on without a pre-fill", seed)
				}
			case mode == "off":
				t.Fatalf("seed %d: --large-store off with a pre-fill of %d bytes", seed, s.StorePrefillBytes)
			case streamUs > largeStoreElectionsMax*electionUs,
				streamUs < largeStoreElectionsMin*electionUs-1 && s.StorePrefillBytes != storePrefillMaxBytes:
				t.Fatalf("seed %d: a snapshot of %d bytes streams in %dus at %d B/s", seed, s.StorePrefillBytes, streamUs, min(bw, disk))
			}
			if mode == "" && s.StorePrefillBytes > 0 {
				large++
			}
		}
	}
	if large < seeds/8 || large > seeds*3/8 {
		t.Fatalf("%d of %d seeds drew a large store, want about a quarter", large, seeds)
	}
}

// TestSnapshotArrives: a snapshot is on the target's disk after the slower
// of its transfer and its write, plus an fsync; the pre-fill counts, and
// what the target holds from a partial does not cross the link.
func TestSnapshotArrives(t *testing.T) {
	o := DefaultOptions()
	o.Seed, o.LargeStore, o.Faults = 3, "on", 0
	w, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := w.Settings()
	size := w.snapshotBytes(10_000)
	if size != 10_000+s.StorePrefillBytes {
		t.Fatalf("snapshot of 10000 bytes counts %d with a pre-fill of %d", size, s.StorePrefillBytes)
	}
	slack := s.Net.LatencyMaxUs + s.FsyncMaxUs
	for _, tt := range []struct {
		name      string
		sentBytes int64
		stream    int64
	}{
		{"all sent", size, netsim.TransferUs(size, min(s.Net.BandwidthBytesPerSec, s.DiskBytesPerSec))},
		{"all held from a partial: the disk's write alone", 0, netsim.TransferUs(size, s.DiskBytesPerSec)},
	} {
		at, ok := w.snapshotArrives(w.members[0], w.members[1], tt.sentBytes, size)
		if !ok {
			t.Fatalf("%s: lost on a network without faults", tt.name)
		}
		if at < tt.stream || at > tt.stream+slack {
			t.Fatalf("%s: on its disk at %dus; streaming takes %dus, latency and fsync up to %dus more", tt.name, at, tt.stream, slack)
		}
	}
}

// snapshotScenario is a large store's catch-up on which the cluster's
// quorum hangs: m3 is down for 8 s and falls behind the compacted log,
// then m2 crashes for good, so that the leader needs m3 while it
// receives and loads a snapshot that takes seconds.
func snapshotScenario(bug string) Options {
	o := DefaultOptions()
	o.Seed, o.Duration, o.LargeStore, o.Faults, o.PlantedBug = 2, 20*time.Second, "on", FaultCrash, bug
	o.Schedule = []ScheduledFault{
		{AtUs: 2_000_000, Kind: FaultCrash, Member: 2, ForUs: 8_000_000},
		{AtUs: 11_000_000, Kind: FaultCrash, Member: 1, ForUs: 30_000_000},
	}
	return o
}

// TestSnapshotKeepsQuorum: in snapshotScenario the member loads the
// snapshot off its loop, answering heartbeats, and the leader keeps its
// quorum (the same world with the old install fails: bugs_test.go).
func TestSnapshotKeepsQuorum(t *testing.T) {
	res, trace := runTraced(t, snapshotScenario(""), nil)
	if !res.OK() {
		t.Fatalf("%v\n  replay: detcd-sim run %s", res.Failures, res.Options)
	}
	if !strings.Contains(trace, "with the store's pre-fill") {
		t.Fatal("no snapshot was sent")
	}
}
