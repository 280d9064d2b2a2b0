package core

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// status answers Maintenance.Status; the driver adds the version fields.
func (n *Node) status() *pb.StatusResponse {
	resp := &pb.StatusResponse{
		Header:           n.header(0),
		DbSize:           n.kv.Size(),
		DbSizeInUse:      n.kv.SizeInUse(),
		DbSizeQuota:      n.cfg.QuotaBackendBytes,
		DowngradeInfo:    &pb.DowngradeInfo{},
		Leader:           n.lead,
		RaftIndex:        n.rn.BasicStatus().GetCommit(),
		RaftTerm:         n.term,
		RaftAppliedIndex: n.st.index,
	}
	if n.lead == 0 {
		resp.Errors = append(resp.Errors, "etcdserver: no leader")
	}
	if m, ok := n.st.members.get(n.cfg.ID); ok {
		resp.IsLearner = m.IsLearner
	}
	for _, a := range n.st.alarms.list {
		resp.Errors = append(resp.Errors, fmt.Sprintf("memberID:%d alarm:%s ", a.MemberID, a.Alarm))
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

// memberList answers Cluster.MemberList from the applied membership.
func (n *Node) memberList() *pb.MemberListResponse {
	resp := &pb.MemberListResponse{Header: n.header(0)}
	for _, m := range n.st.members.list {
		resp.Members = append(resp.Members, &pb.Member{
			ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner,
		})
	}
	return resp
}
