package sim

import (
	"fmt"
	"math"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core"
)

// The epoch checks: a restore of the whole cluster from a backup
// (restore.go) ends an epoch, and etcd's restore promises what the
// checkers then hold the new cluster to:
//
//   - the writes acknowledged after the backup's revision are lost, and
//     only those: every write at or below it survives (the durability
//     check exempts the others);
//   - the key space is the backup's at the restore point: the
//     linearizability model starts again from the backup's state of each
//     key group, with its floor at the bumped revision;
//   - every revision the new cluster shows is at or above the bumped
//     revision (the backup's plus --bump-revision), so no client sees a
//     revision twice, and no write lands at or below it;
//   - the bumped revision is compacted (--mark-compacted): a read or a
//     compaction at a revision below it fails with ErrCompacted, and a
//     watch resumed from below it is canceled as compacted before it
//     delivers anything;
//   - the backup's leases come back, each with the TTL left in the
//     backup or its full TTL, restarted when the new leader promotes it;
//   - the auth store is the backup's.
//
// What the checkers keep by raft index or term (entries, leaders, the
// lease log, the revisions after each index) starts again with the new
// cluster's log; the key space's history starts again at the bumped
// revision, the old epoch's kept for the watch checks, whose watchers
// live on across the restore.

// restorePoint is one restore: the epoch it starts, when, the backup's
// revision and the bumped one, and the backup's content.
type restorePoint struct {
	epoch             int
	at                int64
	backupRev, bumped int64
	content           core.BackupContent
}

// restored ends the epoch the cluster was in and starts p's, before the
// restored members start.
func (c *checkers) restored(p restorePoint) {
	c.judgeEpochLeases()
	c.restores = append(c.restores, p)
	c.pastHist = append(c.pastHist, c.hist)
	c.hist = history{base: map[string]*mvccpb.KeyValue{}, baseRev: p.bumped, scannedTo: p.bumped}
	for _, kv := range p.content.KVs {
		c.hist.base[string(kv.Key)] = kv
	}
	c.compactions = append(c.compactions, compaction{rev: p.bumped, at: p.at})
	// A new cluster's log starts at index 1, term 1.
	c.leaders, c.entries, c.snap.revAt = map[uint64]uint64{}, map[uint64][32]byte{}, nil
	c.revokedAt = map[int64]int64{}
	c.leaseLog = leaseLog{ckpts: map[int64][]leaseCkpt{}, promoted: map[uint64]leasePromotion{}, grantedByLeader: map[int64]leasePromotion{}}
	for _, l := range p.content.Leases {
		// The backup's remaining TTL, or the full TTL, from the new
		// leader's promotion.
		c.leaseLog.ckpts[l.ID] = []leaseCkpt{{remaining: l.RemainingTTL}}
	}
	// The stop took every member down, and every transfer with it; the
	// alarms are the backup's now (etcd's restore keeps them), which may
	// have none: a NOSPACE listed before the restore says nothing about
	// writes after it, as if disarmed.
	c.quorum.flights, c.quorum.allTouchedUntil = nil, max(c.quorum.allTouchedUntil, p.at)
	c.maint.disarms = append(c.maint.disarms, &disarmSent{sent: p.at, answeredAt: p.at})
	c.perm.states, c.perm.newest = map[permPos]*permState{}, nil
}

// restoredMember checks a member restored at p once it started: it is a
// member of the new cluster and holds every lease of the backup.
func (c *checkers) restoredMember(m *member, p restorePoint) {
	if id := m.node.ClusterID(); id != c.w.clusterID() {
		c.fail("restore: %s started in cluster %x, want the new cluster %x", m.name, id, c.w.clusterID())
	}
	for _, l := range p.content.Leases {
		if !m.node.HasLease(l.ID) {
			c.fail("restore: %s restored from the backup at revision %d lacks its lease %x", m.name, p.backupRev, l.ID)
			return
		}
	}
}

// epochStart is when the current epoch began (0: the first).
func (c *checkers) epochStart() int64 {
	if len(c.restores) == 0 {
		return 0
	}
	return c.restores[len(c.restores)-1].at
}

// lostInRestore reports whether an acknowledged write of op's was lost,
// as it may be, in the restore that ended op's epoch: it is above that
// restore's backup.
func (c *checkers) lostInRestore(op *Op) bool {
	return op.Epoch < len(c.restores) && op.Rev > c.restores[op.Epoch].backupRev
}

// histOf is the history of op's epoch.
func (c *checkers) histOf(op *Op) *history {
	if op.Epoch < len(c.pastHist) {
		return &c.pastHist[op.Epoch]
	}
	return &c.hist
}

// checkEpochRev: an operation answered by a restored cluster shows a
// revision at or above the bumped one.
func (c *checkers) checkEpochRev(op *Op) {
	if op.Epoch == 0 || op.Unknown || op.Failed || op.Err != "" || op.Epoch > len(c.restores) {
		return
	}
	if p := c.restores[op.Epoch-1]; op.Rev < p.bumped {
		c.fail("restore: %s in epoch %d shows revision %d, below the restore's bumped revision %d (backup at %d)", op, op.Epoch, op.Rev, p.bumped, p.backupRev)
	}
}

// judgeEpochLeases judges the leases granted in the epoch that ends by
// what is known of them: whether one expired early. Their keys are
// judged no more (the history of a cluster stopped mid-flight is not
// complete), nor are they in later epochs: a restore may lose renewals.
func (c *checkers) judgeEpochLeases() {
	for _, rec := range c.leases[c.leasesJudged:] {
		c.checkLeaseExpiry(rec)
	}
	c.leasesJudged = len(c.leases)
}

// porcupineTimes places an operation of epoch e in porcupine's time,
// where each restore is an instant between its epochs: times double, an
// epoch after a restore shifts by two, and an operation of an epoch a
// restore ended returns by that restore at the latest (the cluster that
// could carry it out was stopped).
func porcupineTimes(op *Op, restores []restorePoint) (call, ret int64) {
	if len(restores) == 0 {
		ret = op.Return
		if op.Unknown {
			ret = math.MaxInt64
		}
		return op.Call, ret
	}
	shift := int64(0)
	if op.Epoch > 0 {
		shift = 2
	}
	call, ret = 2*op.Call+shift, int64(math.MaxInt64)
	if !op.Unknown {
		ret = 2*op.Return + shift
	}
	if op.Epoch < len(restores) {
		ret = max(min(ret, 2*restores[op.Epoch].at), call)
	}
	return call, ret
}

// restoreOps are, for each restore, one operation per key group that
// sets the model to the backup's state of the group, at the restore's
// instant in porcupine's time (porcupineTimes), as a client of its own
// (numbered clients).
func restoreOps(restores []restorePoint, groups, clients int) []*Op {
	var out []*Op
	for _, p := range restores {
		for g := 0; g < groups; g++ {
			h := history{base: map[string]*mvccpb.KeyValue{}, baseRev: p.backupRev, scannedTo: p.backupRev}
			for _, kv := range p.content.KVs {
				h.base[string(kv.Key)] = kv
			}
			s, _ := h.stateAt(g, p.backupRev)
			s.floor = p.bumped
			out = append(out, &Op{Client: clients, Kind: opRestore, Group: g, Epoch: p.epoch, Call: p.at, Return: p.at, Restored: &s})
		}
	}
	return out
}

func (p restorePoint) String() string {
	return fmt.Sprintf("restore to epoch %d at %dus from revision %d, bumped to %d", p.epoch, p.at, p.backupRev, p.bumped)
}
