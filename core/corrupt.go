package core

import (
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core/mvcc"
)

// What a driver's corruption checks need (etcd's initial, periodic and
// compaction-hash checks): the network and the timers are the driver's,
// the key space and the alarm are core's.

// HashView is a view of the applied key space that can be hashed off the
// loop at any revision it still holds.
func (n *Node) HashView() *mvcc.View { return n.kv.Snapshot() }

// CompactionHashes are the hashes kept from the last compactions, oldest
// first.
func (n *Node) CompactionHashes() []mvcc.KVHash { return slices.Clone(n.hashes) }

// KVHashAt answers HashKV at rev (0: the view's revision) from a HashView
// and the CompactionHashes: the hash kept from a compaction at rev if there
// is one, as etcd answers, else a new one.
func KVHashAt(v *mvcc.View, kept []mvcc.KVHash, rev int64) (mvcc.KVHash, error) {
	for _, h := range kept {
		if int64(h.Rev) == rev {
			return h, nil
		}
	}
	return v.HashKV(mvcc.Revision(rev))
}

// RaiseCorrupt proposes the CORRUPT alarm for a member (0: the whole
// cluster, when no majority agrees), as etcd's leader does when a check
// finds that member's data differs. Once applied, every member refuses
// writes with ErrCorrupt until the alarm is cleared.
func (n *Node) RaiseCorrupt(member uint64) {
	if n.st.alarms.has(member, pb.AlarmType_CORRUPT) {
		return
	}
	n.proposeInternal(&pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: member, Alarm: pb.AlarmType_CORRUPT}}, nil)
}
