package server

import (
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// published is the member's state as a turn of the loop leaves it: what
// the handlers, the guard, the health checks, the metrics and the
// corruption checks, all off the loop, see of it.
type published struct {
	leader            uint64
	learner           bool
	size, inUse, keys int64
	rev, compactRev   int64
	applied, commit   uint64
	authRev           uint64
	noSpace, corrupt  bool
	alarms            []*pb.AlarmMember
}

// publishedOf reads what to publish from the node; on the loop.
func publishedOf(n *core.Node) published {
	size, inUse, keys := n.Sizes()
	return published{
		leader: n.Leader(), learner: n.IsLearner(),
		size: size, inUse: inUse, keys: int64(keys), rev: n.Rev(), compactRev: n.CompactRev(),
		applied: n.AppliedIndex(), commit: n.Commit(), authRev: n.AuthRevision(),
		noSpace: n.NoSpace(), corrupt: n.Corrupt(), alarms: n.Alarms(),
	}
}

// memberStatus holds what the loop last published, for readers on any
// goroutine. It is grpcsvc.Role for the guard.
type memberStatus struct {
	id                uint64 // this member's
	leader            atomic.Uint64
	learner           atomic.Bool
	size, inUse, keys atomic.Int64
	rev, compactRev   atomic.Int64
	applied, commit   atomic.Uint64
	authRev           atomic.Uint64
	noSpace, corrupt  atomic.Bool
}

// store publishes p and reports whether the leader changed.
func (st *memberStatus) store(p published) (leaderChanged bool) {
	st.learner.Store(p.learner)
	st.size.Store(p.size)
	st.inUse.Store(p.inUse)
	st.keys.Store(p.keys)
	st.rev.Store(p.rev)
	st.compactRev.Store(p.compactRev)
	st.applied.Store(p.applied)
	st.commit.Store(p.commit)
	st.authRev.Store(p.authRev)
	st.noSpace.Store(p.noSpace)
	st.corrupt.Store(p.corrupt)
	return st.leader.Swap(p.leader) != p.leader
}

// Leader is the member's leader, 0 if none.
func (st *memberStatus) Leader() uint64 { return st.leader.Load() }

// IsLearner reports whether the member is a learner.
func (st *memberStatus) IsLearner() bool { return st.learner.Load() }

// isLeader reports whether this member leads.
func (st *memberStatus) isLeader() bool { return st.leader.Load() == st.id }

// activeAlarms are the member's alarms by etcd's names, NOSPACE first.
func (st *memberStatus) activeAlarms() []string {
	var out []string
	if st.noSpace.Load() {
		out = append(out, "NOSPACE")
	}
	if st.corrupt.Load() {
		out = append(out, "CORRUPT")
	}
	return out
}
