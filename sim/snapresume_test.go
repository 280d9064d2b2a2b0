package sim

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/detcd/detcd/snapresume"
)

// TestSnapshotResumesAfterLeaderCrash replays the kept seed in which the
// leader crashes while it streams a large store's snapshot: the next
// leader's transfer, of another index, resumes from what arrived, so
// only the rest crosses the link; the same seed gives the same trace.
func TestSnapshotResumesAfterLeaderCrash(t *testing.T) {
	sf, err := ReadSeedFile("../testdata/seeds/snapshot-resumed-after-leader-crash-95.seed")
	if err != nil {
		t.Fatal(err)
	}
	res, trace := runTraced(t, sf.Options, nil)
	if err := sf.Check(res); err != nil {
		t.Fatal(err)
	}
	broke := regexp.MustCompile(`(m\d)>(m\d) snapshot (\d+) broke off \(the sender crashed\) after (\d+) of`).FindStringSubmatch(trace)
	if broke == nil {
		t.Fatal("the leader's transfer did not break off with its crash")
	}
	from, to, index := broke[1], broke[2], broke[3]
	resumed := regexp.MustCompile(`(m\d)>` + to + ` snapshot (\d+) \(\d+ bytes, \d+ with the store's pre-fill, (\d+) held from partial ` + index + `;`).FindStringSubmatch(trace)
	if resumed == nil || resumed[1] == from || resumed[2] == index {
		t.Fatalf("another leader's transfer did not resume from partial %s: %v", index, resumed)
	}
	// All that arrived is held, but for the chunk that arrived in part.
	held, _ := strconv.ParseInt(resumed[3], 10, 64)
	arrived, _ := strconv.ParseInt(broke[4], 10, 64)
	if held > arrived || held < arrived-2*snapresume.ChunkBytes {
		t.Fatalf("held %d bytes of the %d that arrived", held, arrived)
	}
	if again := run(t, sf.Options); again.TraceHash != res.TraceHash {
		t.Fatalf("the seed twice: %s then %s", res.TraceHash, again.TraceHash)
	}
}

// TestPrefillChunks: the pre-fill's chunks stand for the same bytes on
// every member, and a piece of one is not the whole chunk.
func TestPrefillChunks(t *testing.T) {
	const n = 2*snapresume.ChunkBytes + 100
	cs := prefillChunks(n)
	if len(cs) != 3 || cs[2].Bytes != 100 || cs[0] == cs[1] {
		t.Fatalf("chunks of %d bytes: %v", n, cs)
	}
	part := prefillChunks(snapresume.ChunkBytes + 7)
	o := snapresume.Offer{Chunks: part}
	if p := snapresume.PlanFor(o, cs); !p.Held[0] || p.Held[1] || p.HeldBytes != snapresume.ChunkBytes {
		t.Fatalf("a partial of %d pre-fill bytes against %d: %+v", snapresume.ChunkBytes+7, n, p)
	}
}
