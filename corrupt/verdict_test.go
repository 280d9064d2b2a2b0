package corrupt

import (
	"errors"
	"slices"
	"testing"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
)

func reply(id uint64, rev, compactRev int64, hash uint32) PeerHash {
	return PeerHash{ID: id, Reply: &Reply{Revision: rev, CompactRevision: compactRev, Hash: hash}}
}

func noReply(id uint64) PeerHash { return PeerHash{ID: id, Err: errors.New("unreachable")} }

func TestInitialMismatches(t *testing.T) {
	local := mvcc.KVHash{Hash: 7, CompactRev: 3, Rev: 10, Alt: 7}
	for _, c := range []struct {
		name  string
		peers []PeerHash
		want  int
	}{
		{"same hash", []PeerHash{reply(2, 10, 3, 7), reply(3, 12, 3, 7)}, 0},
		{"other hash, same compaction", []PeerHash{reply(2, 10, 3, 7), reply(3, 10, 3, 8)}, 1},
		{"other hash, other compaction: skipped", []PeerHash{reply(2, 10, 5, 8)}, 0},
		{"unreachable or compacted: skipped", []PeerHash{noReply(2), {ID: 3, Err: core.ErrCompacted}}, 0},
	} {
		if got, _ := (&Checker{}).initialMismatches(local, c.peers); got != c.want {
			t.Errorf("%s: %d mismatches, want %d", c.name, got, c.want)
		}
	}
	// Only deletions at revision 10: a peer that compacted there answers
	// the hash it kept, the other flavor (mvcc.KVHash.Alt).
	local.Alt = 9
	for _, c := range []struct {
		name  string
		peers []PeerHash
		want  int
	}{
		{"the kept flavor agrees", []PeerHash{reply(2, 10, 3, 9), reply(3, 10, 3, 7)}, 0},
		{"a third hash does not", []PeerHash{reply(2, 10, 3, 9), reply(3, 10, 3, 8)}, 1},
	} {
		if got, _ := (&Checker{}).initialMismatches(local, c.peers); got != c.want {
			t.Errorf("%s: %d mismatches, want %d", c.name, got, c.want)
		}
	}
}

func TestPeriodicSuspect(t *testing.T) {
	h := mvcc.KVHash{Hash: 7, CompactRev: 3, Rev: 10, Alt: 9}
	for _, c := range []struct {
		name    string
		h2      mvcc.KVHash
		rev2    int64
		peers   []PeerHash
		want    uint64
		wantHit bool
	}{
		{"all agree", h, 10, []PeerHash{reply(2, 10, 3, 7), reply(3, 9, 3, 7)}, 0, false},
		{"a follower that compacted at 10 answers the other flavor", h, 10, []PeerHash{reply(2, 10, 3, 9)}, 0, false},
		{"leader's own hash changed", mvcc.KVHash{Hash: 8, CompactRev: 3, Rev: 10, Alt: 8}, 10, nil, 1, true},
		{"follower ahead of the leader", h, 10, []PeerHash{reply(2, 11, 3, 7)}, 2, true},
		{"follower compacted past the leader", h, 10, []PeerHash{reply(2, 10, 4, 7)}, 2, true},
		{"follower's hash differs: the first one only", h, 10, []PeerHash{noReply(2), reply(3, 10, 3, 8), reply(4, 10, 3, 9)}, 3, true},
		{"other compaction, other hash: not comparable", h, 12, []PeerHash{reply(2, 10, 2, 8)}, 0, false},
	} {
		got, hit, _ := (&Checker{ID: 1}).periodicSuspect(h, c.h2, c.rev2, c.peers)
		if got != c.want || hit != c.wantHit {
			t.Errorf("%s: suspect %d, %v; want %d, %v", c.name, got, hit, c.want, c.wantHit)
		}
	}
}

func TestCompactHashVerdict(t *testing.T) {
	leader := mvcc.KVHash{Hash: 7, CompactRev: 3, Rev: 5, Alt: 6}
	for _, c := range []struct {
		name      string
		peers     []PeerHash
		alarms    []uint64
		done, all bool
	}{
		{"all agree", []PeerHash{reply(2, 9, 3, 7), reply(3, 9, 3, 7)}, nil, true, true},
		{"one skipped: try an older revision", []PeerHash{reply(2, 9, 3, 7), noReply(3)}, nil, false, false},
		{"other compaction skipped", []PeerHash{reply(2, 9, 3, 7), reply(3, 9, 4, 1)}, nil, false, false},
		{"a follower not yet compacted answers the other flavor", []PeerHash{reply(2, 9, 3, 6), reply(3, 9, 3, 7)}, nil, true, true},
		{"a follower differs", []PeerHash{reply(2, 9, 3, 7), reply(3, 9, 3, 8)}, []uint64{3}, true, false},
		{"the leader differs", []PeerHash{reply(2, 9, 3, 8), reply(3, 9, 3, 8)}, []uint64{1}, true, false},
		{"two minorities", []PeerHash{reply(2, 9, 3, 7), reply(3, 9, 3, 7), reply(4, 9, 3, 8), reply(5, 9, 3, 9)}, []uint64{4, 5}, true, false},
		{"no majority: the cluster", []PeerHash{reply(2, 9, 3, 8), reply(3, 9, 3, 9)}, []uint64{0}, true, false},
	} {
		alarms, done, all, _ := (&Checker{ID: 1}).compactHashVerdict(leader, c.peers)
		if !slices.Equal(alarms, c.alarms) || done != c.done || all != c.all {
			t.Errorf("%s: alarms %v done %v all %v; want %v %v %v", c.name, alarms, done, all, c.alarms, c.done, c.all)
		}
	}
}
