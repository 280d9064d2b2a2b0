package core

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
)

// autoCompactor is etcd's compactor on logical time: only the leader
// compacts, by proposing a compaction through raft.
//
// Periodic mode: every tenth of the retention it notes the revision; once
// a retention has passed since the last compaction it compacts to the
// revision noted a retention ago (then at most hourly, as etcd does).
// Revision mode: every interval it compacts to the current revision minus
// the retention.
type autoCompactor struct {
	revs        []int64
	lastRev     int64
	lastSuccess int64
	base        int64
}

func (a *autoCompactor) tick(n *Node) {
	ac := n.cfg.AutoCompaction
	switch ac.Mode {
	case "periodic":
		a.periodic(n, ac)
	case "revision":
		if n.ticks%ac.IntervalTicks != 0 {
			return
		}
		if rev := int64(n.kv.Rev()) - ac.RetentionRevisions; rev > 0 && rev != a.lastRev && n.isLeader() {
			n.proposeCompaction(rev)
			a.lastRev = rev
		}
	}
}

func (a *autoCompactor) periodic(n *Node, ac AutoCompaction) {
	every := max(ac.RetentionTicks/10, 1)
	if n.ticks%every != 0 {
		return
	}
	if a.base == 0 {
		a.base = ac.RetentionTicks
	}
	a.revs = append(a.revs, int64(n.kv.Rev()))
	if len(a.revs) > 11 {
		a.revs = a.revs[1:]
	}
	rev := a.revs[0]
	if n.ticks-a.lastSuccess < a.base || rev == a.lastRev || !n.isLeader() {
		return
	}
	// etcd compacts hourly after the first time when the retention is
	// longer; one hour is 36000 ticks of 100 ms.
	a.base = min(ac.RetentionTicks, ac.hourTicks())
	n.proposeCompaction(rev)
	a.lastRev, a.lastSuccess = rev, n.ticks
}

func (ac AutoCompaction) hourTicks() int64 {
	if ac.HourTicks > 0 {
		return ac.HourTicks
	}
	return 36000
}

func (n *Node) isLeader() bool { return n.lead == n.cfg.ID && n.lead != raft.None }

// proposeCompaction proposes a compaction that no client waits for.
func (n *Node) proposeCompaction(rev int64) {
	if rev <= int64(n.kv.CompactRev()) {
		return
	}
	n.log.Info("auto compaction", "revision", rev)
	n.proposeInternal(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev}}, nil)
}
