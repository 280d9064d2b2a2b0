package core

import (
	"fmt"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core/auth"
	"github.com/detcd/detcd/core/lease"
	"github.com/detcd/detcd/core/mvcc"
)

// detcd keeps its own checkpoints as storage; etcd's database file is for
// exchange: Maintenance.Snapshot streams one, and a restore reads one. The
// types here carry the state in the parts that file holds, so that the
// code that knows the file's layout (package etcddb) needs nothing of
// core's internals, and core nothing of the file.

// ExchangeState is a member's state as etcd's database file holds it,
// besides the key space.
type ExchangeState struct {
	// Index and Term are the applied raft index and its term (etcd's
	// consistent index).
	Index, Term uint64
	ConfState   *raftpb.ConfState
	Members     []Member
	Removed     []uint64
	Alarms      []*pb.AlarmMember
	Leases      []ExchangeLease
	// ClusterVersion is the version the cluster runs at, "" if unset.
	ClusterVersion string
	// DowngradeTarget is the version a downgrade job takes the cluster
	// to, "" when none is on.
	DowngradeTarget string
	AuthEnabled     bool
	AuthRevision    uint64
	Users           []*authpb.User
	Roles           []*authpb.Role
	// CompactRev is the compaction point, -1 if never compacted.
	CompactRev int64
}

// ExchangeLease is a lease as etcd's lease bucket holds it.
type ExchangeLease struct {
	ID, TTL, RemainingTTL int64
}

// Export returns the state the checkpoint captured in exchange terms and
// its key space, which ExportBucket writes as etcd's key bucket. It reads
// only immutable state, so it may run on any goroutine.
func (c *Checkpoint) Export() (*ExchangeState, *mvcc.View, error) {
	st, ls, _, err := decodeMeta(c.meta)
	if err != nil {
		return nil, nil, err
	}
	ex := &ExchangeState{
		Index: st.index, Term: st.term, ConfState: st.confState,
		Members: st.members.list, Removed: st.members.removed, Alarms: st.alarms.list,
		ClusterVersion: st.clusterVersion, DowngradeTarget: st.downgradeTarget,
		AuthEnabled: st.auth.Enabled(), AuthRevision: st.auth.Revision(),
		Users: st.auth.Users(), Roles: st.auth.Roles(),
		CompactRev: int64(c.view.CompactRev()),
	}
	for _, l := range ls {
		ex.Leases = append(ex.Leases, ExchangeLease{ID: int64(l.ID), TTL: l.TTL, RemainingTTL: l.RemainingTTL})
	}
	return ex, c.view, nil
}

// BackupHeader is the start of a backup, as Maintenance.Snapshot's state
// used to be and RestoreBackup and StatBackup read, made from an
// exchanged state: the key space, as mvcc.BucketImporter appends it,
// follows.
func BackupHeader(ex *ExchangeState) ([]byte, error) {
	a, err := auth.FromParts(ex.AuthEnabled, ex.AuthRevision, ex.Users, ex.Roles)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	st := applied{
		index: ex.Index, term: ex.Term, confState: ex.ConfState,
		members:         members{list: ex.Members, removed: ex.Removed},
		clusterVersion:  ex.ClusterVersion,
		downgradeTarget: ex.DowngradeTarget,
		auth:            a,
	}
	if st.confState == nil {
		st.confState = &raftpb.ConfState{}
	}
	for _, al := range ex.Alarms {
		st.alarms.activate(al.MemberID, al.Alarm)
	}
	ls := make([]*lease.Lease, 0, len(ex.Leases))
	for _, l := range ex.Leases {
		if l.ID <= 0 || l.TTL < 0 || l.RemainingTTL < 0 {
			return nil, fmt.Errorf("%w: lease %+v", ErrCorrupt, l)
		}
		ls = append(ls, &lease.Lease{ID: lease.ID(l.ID), TTL: l.TTL, RemainingTTL: l.RemainingTTL})
	}
	return encodeMeta(&st, ls), nil
}
