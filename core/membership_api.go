package core

import (
	"encoding/json"
	"fmt"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// maxLearners is etcd's default limit on learners.
const maxLearners = 1

// confContext is what a conf change entry carries: which proposal it
// answers and the member it is about, as etcd's member context does.
type confContext struct {
	Proposal  uint64 `json:"proposal,omitempty"`
	Member    Member `json:"member"`
	IsPromote bool   `json:"isPromote,omitempty"`
}

// started counts the voters but skip, and those of them that have
// published their attributes (a name): etcd's started members.
func (ms *members) started(skip uint64) (voters, started int) {
	for _, m := range ms.list {
		if m.IsLearner || m.ID == skip {
			continue
		}
		voters++
		if m.Name != "" {
			started++
		}
	}
	return voters, started
}

func (ms *members) learners() int {
	n := 0
	for _, m := range ms.list {
		if m.IsLearner {
			n++
		}
	}
	return n
}

func (n *Node) memberAdd(r Request) {
	a := r.MemberAdd
	if len(a.PeerURLs) == 0 {
		n.respond(r.ID, nil, ErrMemberBadURLs)
		return
	}
	if n.strictReconfig() && !n.checkReconfig(r, func() error { return n.addStarted(a.IsLearner) }, n.addConnected) {
		return
	}
	if a.IsLearner && n.st.members.learners() >= maxLearners {
		n.respond(r.ID, nil, ErrTooManyLearners)
		return
	}
	m := Member{ID: r.NewMemberID, PeerURLs: a.PeerURLs, IsLearner: a.IsLearner}
	t := raftpb.ConfChangeAddNode
	if a.IsLearner {
		t = raftpb.ConfChangeAddLearnerNode
	}
	n.proposeConfChange(r.ID, t, m, false)
}

func (n *Node) memberRemove(r Request) {
	id := r.MemberRemove.ID
	m, ok := n.st.members.get(id)
	if !ok {
		n.respond(r.ID, nil, ErrMemberNotFound)
		return
	}
	if !m.IsLearner && n.strictReconfig() && !n.checkReconfig(r,
		func() error { return n.removeVoterStarted(id) }, func() error { return n.removeVoterConnected(id) }) {
		return
	}
	n.proposeConfChange(r.ID, raftpb.ConfChangeRemoveNode, m, false)
}

// strictReconfig is etcd's --strict-reconfig-check.
func (n *Node) strictReconfig() bool { return !n.cfg.StrictReconfigCheckDisabled }

// checkReconfig runs the strict check of a member's addition or a voter's
// removal:
// started here, connected on the leader, to which a follower forwards r.
// It reports whether r may go on here; if not, r is answered or forwarded.
func (n *Node) checkReconfig(r Request, started, connected func() error) bool {
	err := started()
	switch {
	case err == nil && !n.isLeader():
		n.forwardToLeader(r) // only the leader knows which voters are up
		return false
	case err == nil:
		err = connected()
	}
	if err != nil {
		n.respond(r.ID, nil, err)
		return false
	}
	return true
}

func (n *Node) memberUpdate(r Request) {
	u := r.MemberUpdate
	if len(u.PeerURLs) == 0 {
		n.respond(r.ID, nil, ErrMemberBadURLs)
		return
	}
	m, ok := n.st.members.get(u.ID)
	if !ok {
		n.respond(r.ID, nil, ErrMemberNotFound)
		return
	}
	m.PeerURLs = u.PeerURLs
	n.proposeConfChange(r.ID, raftpb.ConfChangeUpdateNode, m, false)
}

// memberPromote promotes a learner that has caught up; only the leader
// knows how far a learner is, so followers forward.
func (n *Node) memberPromote(r Request) {
	id := r.MemberPromote.ID
	m, ok := n.st.members.get(id)
	switch {
	case !ok:
		n.respond(r.ID, nil, ErrMemberNotFound)
		return
	case !m.IsLearner:
		n.respond(r.ID, nil, ErrMemberNotLearner)
		return
	case !n.isLeader():
		n.forwardToLeader(r)
		return
	}
	st := n.rn.Status()
	lead, okLead := st.Progress[n.cfg.ID]
	learner, okLearner := st.Progress[id]
	// etcd: a learner is ready once it has 90% of the leader's log.
	if !okLead || !okLearner || float64(learner.Match) < float64(lead.Match)*0.9 {
		n.respond(r.ID, nil, ErrLearnerNotReady)
		return
	}
	if n.strictReconfig() {
		if err := n.mayPromote(); err != nil {
			n.respond(r.ID, nil, err)
			return
		}
	}
	m.IsLearner = false
	n.proposeConfChange(r.ID, raftpb.ConfChangeAddNode, m, true)
}

func (n *Node) proposeConfChange(req RequestID, t raftpb.ConfChangeType, m Member, promote bool) {
	ps := &n.props
	ps.next++
	id := ps.epoch + ps.next
	ctx, _ := json.Marshal(confContext{Proposal: id, Member: m, IsPromote: promote})
	nodeID := m.ID
	cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: &t, NodeId: &nodeID}}, Context: ctx}
	p := &proposal{req: req, id: id, cc: cc, deadline: n.ticks + ps.timeout}
	ps.byID[id] = p
	ps.fifo = append(ps.fifo, p)
	n.proposeData(p)
}

func (n *Node) memberList(r Request) {
	if r.MemberList.GetLinearizable() {
		n.reads.add(n, r)
		return
	}
	n.respond(r.ID, n.memberListResponse(), nil)
}

func (n *Node) memberListResponse() *pb.MemberListResponse {
	resp := &pb.MemberListResponse{Header: n.clusterHeader()}
	resp.Members = n.pbMembers()
	return resp
}

func (n *Node) pbMembers() []*pb.Member {
	var out []*pb.Member
	for _, m := range n.st.members.list {
		out = append(out, &pb.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	return out
}

// moveLeader hands leadership to another voter and answers once it has it.
// tried, for a hand-off, are the transferees so far (nil: a MoveLeader).
func (n *Node) moveLeader(r Request, tried []uint64) {
	target := r.MoveLeader.TargetID
	switch {
	case !n.isLeader():
		n.respond(r.ID, nil, ErrNotLeader)
		return
	case !slices.Contains(n.st.confState.GetVoters(), target):
		n.respond(r.ID, nil, ErrBadLeaderTransferee)
		return
	case target == n.cfg.ID:
		n.respond(r.ID, &pb.MoveLeaderResponse{Header: n.header(0)}, nil)
		return
	}
	n.transfers = append(n.transfers, transfer{req: r.ID, target: target, deadline: n.ticks + int64(n.cfg.RequestTimeoutTicks), tried: tried})
	n.rn.TransferLeader(target)
}

// handOff moves leadership, before this member stops, to the voter in
// contact whose log matches the leader's furthest (the lowest id on a
// tie): it can take over soonest. If raft gives up on it (it did not take
// over within an election timeout: it may have stopped a moment before,
// unseen yet), the next voter in contact gets its turn.
func (n *Node) handOff(r Request) {
	target := n.handOffTarget(nil)
	if target == 0 {
		n.respond(r.ID, &pb.MoveLeaderResponse{Header: n.header(0)}, nil)
		return
	}
	n.log.Info("leadership transfer starting", "transferee", fmt.Sprintf("%x", target))
	n.moveLeader(Request{ID: r.ID, MoveLeader: &pb.MoveLeaderRequest{TargetID: target}}, []uint64{target})
}

// handOffTarget picks the voter in contact, but those tried, whose log
// matches the leader's furthest.
func (n *Node) handOffTarget(tried []uint64) uint64 {
	if !n.isLeader() {
		return 0
	}
	progress := n.rn.Status().Progress
	var best, bestMatch uint64
	for _, id := range n.st.confState.GetVoters() {
		pr, ok := progress[id]
		if id == n.cfg.ID || !ok || !n.peerActive(id) || slices.Contains(tried, id) {
			continue
		}
		if best == 0 || pr.Match > bestMatch || pr.Match == bestMatch && id < best {
			best, bestMatch = id, pr.Match
		}
	}
	return best
}

type transfer struct {
	req      RequestID
	target   uint64
	deadline int64
	// tried are the transferees of a hand-off so far (nil: a MoveLeader,
	// which names its one target).
	tried []uint64
}

// checkTransfers answers leader transfers that finished or timed out,
// and moves a hand-off that raft gave up on to its next transferee.
func (n *Node) checkTransfers() {
	keep := n.transfers[:0]
	for _, t := range n.transfers {
		switch {
		case n.lead == t.target:
			n.respond(t.req, &pb.MoveLeaderResponse{Header: n.header(0)}, nil)
		case t.deadline <= n.ticks:
			n.respond(t.req, nil, ErrTimeoutLeaderTransfer)
		case t.tried != nil && n.isLeader() && n.rn.BasicStatus().LeadTransferee == raft.None:
			if next := n.handOffTarget(t.tried); next != 0 {
				n.log.Info("leadership transfer starting", "transferee", fmt.Sprintf("%x", next), "gave-up-on", fmt.Sprintf("%x", t.target))
				t.target, t.tried = next, append(t.tried, next)
				n.rn.TransferLeader(next)
				keep = append(keep, t)
			} else {
				n.respond(t.req, nil, ErrTimeoutLeaderTransfer)
			}
		default:
			keep = append(keep, t)
		}
	}
	n.transfers = keep
}

// publishAttributes proposes this member's name and client URLs once
// after every start, as etcd publishes them (members count as started
// once they have), and, on the leader, the cluster version when it is not
// the one wanted (unset in a new cluster, or a downgrade job started or
// ended), as etcd's version monitor sets it. Both retry until applied.
func (n *Node) publishAttributes() {
	if n.lead == 0 || n.ticks < n.publishRetryAt {
		return
	}
	self, ok := n.cfg.memberByID(n.cfg.ID)
	cur, applied := n.st.members.get(n.cfg.ID)
	needAttrs := ok && applied && (!n.published || cur.Name != self.Name || !slices.Equal(cur.ClientURLs, self.ClientURLs))
	want := n.wantClusterVersion()
	needVersion := n.isLeader() && want != "" && n.st.clusterVersion != want
	if !needAttrs && !needVersion {
		return
	}
	n.publishRetryAt = n.ticks + int64(n.cfg.RequestTimeoutTicks)
	if needAttrs {
		n.proposeInternal(&pb.InternalRaftRequest{ClusterMemberAttrSet: attrSet(n.cfg.ID, self)}, func(_ proto.Message, err error) {
			if err == nil {
				n.published = true
			}
		})
	}
	if needVersion {
		n.proposeInternal(&pb.InternalRaftRequest{ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: want}}, nil)
	}
}
