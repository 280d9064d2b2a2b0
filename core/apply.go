package core

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// apply applies committed, locally durable entries in order.
func (n *Node) apply(ents []*raftpb.Entry) {
	for _, e := range ents {
		if n.failed != nil {
			return
		}
		if e.GetIndex() <= n.st.index {
			continue // already in the state we restarted from
		}
		switch e.GetType() {
		case raftpb.EntryNormal:
			if len(e.GetData()) > 0 {
				n.applyNormal(e)
			} else {
				n.maybePromote(e.GetTerm())
			}
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				n.fail(fmt.Errorf("%w: conf change at index %d: %v", ErrCorrupt, e.GetIndex(), err))
				return
			}
			n.applyConfChange(cc.AsV2())
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				n.fail(fmt.Errorf("%w: conf change at index %d: %v", ErrCorrupt, e.GetIndex(), err))
				return
			}
			n.applyConfChange(&cc)
		}
		n.st.index, n.st.term = e.GetIndex(), e.GetTerm()
		n.ckpt.logBytes += int64(len(e.GetData()))
		if n.cfg.OnApply != nil {
			n.cfg.OnApply(e.GetIndex(), e.GetTerm(), e.GetData())
		}
	}
	n.compactRaftLog()
}

func (n *Node) applyNormal(e *raftpb.Entry) {
	r := n.props.own(e.GetData())
	if r == nil {
		r = new(pb.InternalRaftRequest)
		if err := proto.Unmarshal(e.GetData(), r); err != nil {
			n.fail(fmt.Errorf("%w: entry %d does not decode: %v", ErrCorrupt, e.GetIndex(), err))
			return
		}
	}
	msg, err := n.applyRequest(r, e.GetIndex())
	if h := r.GetHeader(); h != nil {
		n.props.finish(n, h.GetID(), msg, err)
	}
}

// applyRequest applies one request from the log. Its result is the same
// on every member; only the proposer answers a client with it.
func (n *Node) applyRequest(r *pb.InternalRaftRequest, index uint64) (proto.Message, error) {
	// etcd's corrupt applier is the outermost: it refuses before any
	// permission check.
	if n.st.alarms.corrupt() && refusedWhenCorrupt(r) {
		return nil, ErrCorrupt
	}
	if err := n.applyAuthCheck(r); err != nil {
		return nil, err
	}
	switch {
	case isAuthOp(r):
		return n.applyAuth(r, index)
	case r.Put != nil:
		return n.applyPut(r.Put)
	case r.DeleteRange != nil:
		return n.applyDelete(r.DeleteRange)
	case r.Txn != nil:
		resp, err := n.applyTxn(r.Txn, true)
		if err != nil {
			return nil, err
		}
		return resp, nil
	case r.Compaction != nil:
		return n.applyCompaction(r)
	case r.Alarm != nil:
		return n.applyAlarm(r.Alarm), nil
	case r.LeaseGrant != nil:
		return n.applyLeaseGrant(r.LeaseGrant)
	case r.LeaseRevoke != nil:
		return n.applyLeaseRevoke(r.LeaseRevoke)
	case r.LeaseCheckpoint != nil:
		return n.applyLeaseCheckpoint(r.LeaseCheckpoint), nil
	case r.ClusterMemberAttrSet != nil:
		n.applyAttrSet(r.ClusterMemberAttrSet)
		return nil, nil
	case r.ClusterVersionSet != nil:
		n.st.clusterVersion = r.ClusterVersionSet.Ver
		return nil, nil
	case r.DowngradeInfoSet != nil:
		n.applyDowngradeInfoSet(r.DowngradeInfoSet)
		return nil, nil
	}
	return nil, nil
}

// compactRaftLog keeps etcd's --snapshot-count entries of raft log in
// memory, the last SnapshotCatchUpEntries of them for slow followers.
func (n *Node) compactRaftLog() {
	first, _ := n.storage.FirstIndex()
	if n.st.index < first+n.cfg.SnapshotCount+n.cfg.SnapshotCatchUpEntries {
		return
	}
	if _, err := n.storage.CreateSnapshot(n.st.index, n.st.confState, nil); err != nil {
		n.log.Warn("raft log snapshot", "err", err)
		return
	}
	if err := n.storage.Compact(n.st.index - n.cfg.SnapshotCatchUpEntries); err != nil {
		n.log.Warn("raft log compaction", "err", err)
	}
}

func (c *Config) memberByID(id uint64) (Member, bool) {
	for _, m := range c.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// clusterHeader is the header of the Cluster service's responses: etcd
// leaves their revision out.
func (n *Node) clusterHeader() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: n.cfg.ClusterID, MemberId: n.cfg.ID, RaftTerm: n.term}
}

// header is the response header etcd's gRPC layer fills in.
func (n *Node) header(rev int64) *pb.ResponseHeader {
	if rev == 0 {
		rev = int64(n.kv.Rev())
	}
	return &pb.ResponseHeader{ClusterId: n.cfg.ClusterID, MemberId: n.cfg.ID, Revision: rev, RaftTerm: n.term}
}
