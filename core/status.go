package core

import (
	"cmp"
	"hash/crc32"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core/auth"
	"github.com/detcd/detcd/core/lease"
	"github.com/detcd/detcd/core/mvcc"
)

// dbSizeBaseBytes and dbSizeInUseBaseBytes are what an empty etcd 3.7
// database file takes, and uses, before the key space's share. Clients
// divide by the size: etcdctl's endpoint status table fails on a zero.
const (
	dbSizeBaseBytes      = 20 << 10
	dbSizeInUseBaseBytes = 16 << 10
)

// dbSize is etcd's database size, which the space quota is checked
// against, and dbSizeInUse the part in use, both as etcd would have them
// for this key space.
func (n *Node) dbSize() int64      { return dbSizeBaseBytes + n.kv.Size() }
func (n *Node) dbSizeInUse() int64 { return dbSizeInUseBaseBytes + n.kv.SizeInUse() }

// status answers Maintenance.Status; the driver adds the version fields.
func (n *Node) status() *pb.StatusResponse {
	resp := &pb.StatusResponse{
		Header:           n.header(0),
		DbSize:           n.dbSize(),
		DbSizeInUse:      n.dbSizeInUse(),
		DbSizeQuota:      n.cfg.QuotaBackendBytes,
		DowngradeInfo:    n.downgradeInfo(),
		Leader:           n.lead,
		RaftIndex:        n.rn.BasicStatus().GetCommit(),
		RaftTerm:         n.term,
		RaftAppliedIndex: n.st.index,
		// etcd's storage version follows the applied cluster version (a
		// downgrade takes both to its target); grpcsvc reports its own
		// format's until the leader has set one.
		StorageVersion: n.st.clusterVersion,
	}
	if n.lead == 0 {
		resp.Errors = append(resp.Errors, "etcdserver: no leader")
	}
	if m, ok := n.st.members.get(n.cfg.ID); ok {
		resp.IsLearner = m.IsLearner
	}
	for _, a := range n.st.alarms.list {
		// etcd's words: the alarm's protobuf text form.
		resp.Errors = append(resp.Errors, a.String())
	}
	return resp
}

// Info is a summary of the member for drivers and tests.
type Info struct {
	ID, Leader, Term        uint64
	AppliedIndex            uint64
	Revision, CompactRev    int64
	Members                 []Member
	PendingProposals, Reads int
}

// Info reports the member's state.
func (n *Node) Info() Info {
	return Info{
		ID: n.cfg.ID, Leader: n.lead, Term: n.term, AppliedIndex: n.st.index,
		Revision: int64(n.kv.Rev()), CompactRev: int64(n.kv.CompactRev()),
		Members:          append([]Member(nil), n.st.members.list...),
		PendingProposals: len(n.props.byID), Reads: len(n.reads.waiting),
	}
}

// View returns a view of the applied state and the header to answer with,
// for drivers that serve serializable reads off the loop.
func (n *Node) View() (*mvcc.View, *pb.ResponseHeader) {
	return n.kv.View(), n.header(0)
}

// Rev is the key space's current revision and CompactRev its compaction
// revision; Term and Leader are raft's. All are cheap.
func (n *Node) Rev() int64 { return int64(n.kv.Rev()) }

// Ticks is the node's logical time, in ticks.
func (n *Node) Ticks() int64      { return n.ticks }
func (n *Node) CompactRev() int64 { return int64(n.kv.CompactRev()) }
func (n *Node) Term() uint64      { return n.term }
func (n *Node) Leader() uint64    { return n.lead }

// HasLease reports whether the applied state holds lease id.
func (n *Node) HasLease(id int64) bool { return n.lessor.Lookup(lease.ID(id)) != nil }

// LeadTransferee is the voter this member, leading, is handing its
// leadership to (MoveLeader), 0 if none.
func (n *Node) LeadTransferee() uint64 { return n.rn.BasicStatus().LeadTransferee }

// IsLearner reports whether the applied membership has this member as a
// learner.
func (n *Node) IsLearner() bool {
	m, ok := n.st.members.get(n.cfg.ID)
	return ok && m.IsLearner
}

// Sizes are etcd's database size and size in use, as Status has them,
// and the key count, for metrics.
func (n *Node) Sizes() (size, inUse int64, keys int) {
	return n.dbSize(), n.dbSizeInUse(), n.kv.Keys()
}

// NoSpace reports whether a NOSPACE alarm is raised.
func (n *Node) NoSpace() bool { return n.st.alarms.noSpace() }

// Alarms are the raised alarms, copied, for drivers' metrics.
func (n *Node) Alarms() []*pb.AlarmMember {
	var out []*pb.AlarmMember
	for _, a := range n.st.alarms.list {
		out = append(out, &pb.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm})
	}
	return out
}

// Corrupt reports whether a CORRUPT alarm is raised for any member.
func (n *Node) Corrupt() bool { return n.st.alarms.corrupt() }

// AuthHash is a hash of the auth store, for checkers comparing members.
func (n *Node) AuthHash() uint32 { return crc32.ChecksumIEEE(n.st.auth.Marshal()) }

// AuthCopy is a copy of the auth store, for checkers that judge what it
// permitted: changing it changes nothing in the node.
func (n *Node) AuthCopy() (*auth.Store, error) { return auth.Unmarshal(n.st.auth.Marshal()) }

// HashKV hashes the key space as Maintenance.HashKV does, on the loop:
// for tests and the simulator, whose checks run between events.
func (n *Node) HashKV(rev int64) (mvcc.KVHash, error) {
	return n.kv.Snapshot().HashKV(mvcc.Revision(rev))
}

// AppliedIndex is the index of the last applied entry.
func (n *Node) AppliedIndex() uint64 { return n.st.index }

// LastIndex is the index of the last entry in the member's raft log.
func (n *Node) LastIndex() uint64 {
	i, _ := n.storage.LastIndex()
	return i
}

// Commit is raft's commit index.
func (n *Node) Commit() uint64 { return n.rn.BasicStatus().GetCommit() }

// ScanEvents walks the key space's history from a revision, for checkers
// that compare what watchers got with what happened.
func (n *Node) ScanEvents(from int64, fn func(ev *mvccpb.Event) bool) error {
	return n.kv.ScanEvents(mvcc.Revision(from), fn)
}

// compactionHashesMax is how many compaction hashes are kept, as etcd.
const compactionHashesMax = 10

// CompactionHash records the hash of a compaction's revision.
func (n *Node) CompactionHash(h mvcc.KVHash) {
	for _, w := range n.physical {
		if w.rev == int64(h.Rev) {
			w.hashDone = true
		}
	}
	n.hashJobs = max(n.hashJobs-1, 0)
	defer n.finishPhysical()
	n.hashes = append(n.hashes, h)
	slices.SortStableFunc(n.hashes, func(a, b mvcc.KVHash) int { return cmp.Compare(a.Rev, b.Rev) })
	if len(n.hashes) > compactionHashesMax {
		n.hashes = n.hashes[len(n.hashes)-compactionHashesMax:]
	}
}

// Members is the applied membership, and MembersVersion a number that
// changes whenever it does, so a driver can keep its transport in step
// cheaply.
func (n *Node) Members() []Member      { return slices.Clone(n.st.members.list) }
func (n *Node) MembersVersion() uint64 { return n.st.members.version }

// RemovedMembers are the ids of the members removed from the cluster
// (they change with MembersVersion): a driver's transport refuses them,
// as etcd's answers a removed member's streams with 410 Gone.
func (n *Node) RemovedMembers() []uint64 { return slices.Clone(n.st.members.removed) }

// InitialMembers are the members the node's configuration named (its
// --initial-cluster, or what a join learned from the cluster): a driver's
// transport uses them until the node has applied a membership.
func (n *Node) InitialMembers() []Member { return slices.Clone(n.cfg.Members) }

// Published reports whether this start's attributes (name, client URLs)
// have been applied: etcd serves clients only from then on.
func (n *Node) Published() bool { return n.published }

// ClusterVersion is the cluster version the node has applied, "" until
// the leader has set it.
func (n *Node) ClusterVersion() string { return n.st.clusterVersion }

// ClusterID is the cluster's id.
func (n *Node) ClusterID() uint64 { return n.cfg.ClusterID }
