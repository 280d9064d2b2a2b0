package core

import (
	"encoding/json"
	"fmt"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
)

func attrSet(id uint64, m Member) *membershippb.ClusterMemberAttrSetRequest {
	return &membershippb.ClusterMemberAttrSetRequest{Member_ID: id, MemberAttributes: &membershippb.Attributes{Name: m.Name, ClientUrls: m.ClientURLs}}
}

// decodeConfContext reads a conf change's context: detcd's, or a bare
// member as raft's bootstrap entries of older data carry.
func decodeConfContext(b []byte) (confContext, error) {
	var c confContext
	if len(b) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, err
	}
	if c.Member.ID == 0 {
		var m Member
		if json.Unmarshal(b, &m) == nil && m.ID != 0 {
			c.Member = m
		}
	}
	return c, nil
}

// applyConfChange applies a membership change from the log. A change that
// is not valid by then (its member removed meanwhile, its URLs taken) is
// applied to raft as a no-op, as etcd does, and its proposer gets the
// error.
func (n *Node) applyConfChange(cc *raftpb.ConfChangeV2) {
	ctx, err := decodeConfContext(cc.GetContext())
	if err != nil {
		n.fail(fmt.Errorf("%w: conf change context: %v", ErrCorrupt, err))
		return
	}
	var ch *raftpb.ConfChangeSingle
	if len(cc.GetChanges()) == 1 {
		ch = cc.GetChanges()[0]
	}
	if err == nil && ch != nil {
		err = n.validateConfChange(ch, ctx)
	}
	if err != nil {
		zero := uint64(0)
		t := ch.GetType()
		cc = &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: &t, NodeId: &zero}}}
	}
	n.st.confState = n.rn.ApplyConfChange(cc)
	if err == nil && ch != nil {
		n.applyMembership(ch, ctx)
	}
	if ctx.Proposal != 0 {
		var resp *pb.MemberAddResponse
		if err == nil {
			resp = &pb.MemberAddResponse{Header: n.clusterHeader(), Members: n.pbMembers()}
		}
		n.finishConfChange(ctx, ch, resp, err)
	}
}

func (n *Node) validateConfChange(ch *raftpb.ConfChangeSingle, ctx confContext) error {
	id := ch.GetNodeId()
	if slices.Contains(n.st.members.removed, id) {
		return ErrMemberRemoved
	}
	m, exists := n.st.members.get(id)
	switch ch.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		if ctx.IsPromote {
			if !exists {
				return ErrMemberNotFound
			}
			if !m.IsLearner {
				return ErrMemberNotLearner
			}
			return nil
		}
		if exists {
			return ErrMemberExist
		}
		if n.urlTaken(ctx.Member.PeerURLs, 0) {
			return ErrPeerURLExist
		}
		if ch.GetType() == raftpb.ConfChangeAddLearnerNode && n.st.members.learners() >= maxLearners {
			return ErrTooManyLearners
		}
	case raftpb.ConfChangeRemoveNode:
		if !exists {
			return ErrMemberNotFound
		}
	case raftpb.ConfChangeUpdateNode:
		if !exists {
			return ErrMemberNotFound
		}
		if n.urlTaken(ctx.Member.PeerURLs, id) {
			return ErrPeerURLExist
		}
	}
	return nil
}

func (n *Node) urlTaken(urls []string, skip uint64) bool {
	for _, m := range n.st.members.list {
		if m.ID == skip {
			continue
		}
		for _, u := range m.PeerURLs {
			if slices.Contains(urls, u) {
				return true
			}
		}
	}
	return false
}

func (n *Node) applyMembership(ch *raftpb.ConfChangeSingle, ctx confContext) {
	id := ch.GetNodeId()
	switch ch.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		if ctx.IsPromote {
			m, _ := n.st.members.get(id)
			m.IsLearner = false
			n.st.members.add(m)
			return
		}
		m := ctx.Member
		if m.ID == 0 {
			m.ID = id
		}
		if b, ok := n.cfg.memberByID(id); ok && m.Name == "" {
			m.Name, m.ClientURLs = b.Name, b.ClientURLs
		}
		m.IsLearner = ch.GetType() == raftpb.ConfChangeAddLearnerNode
		n.st.members.add(m)
	case raftpb.ConfChangeRemoveNode:
		n.st.members.remove(id)
		if id == n.cfg.ID {
			n.log.Warn("this member was removed from the cluster")
			n.fail(ErrMemberRemoved)
		}
	case raftpb.ConfChangeUpdateNode:
		m, _ := n.st.members.get(id)
		m.PeerURLs = ctx.Member.PeerURLs
		n.st.members.add(m)
	}
}

// finishConfChange answers the proposer of a membership change with the
// response its kind calls for.
func (n *Node) finishConfChange(ctx confContext, ch *raftpb.ConfChangeSingle, add *pb.MemberAddResponse, err error) {
	if err != nil {
		n.props.finish(n, ctx.Proposal, nil, err)
		return
	}
	hdr, members := n.clusterHeader(), n.pbMembers()
	m := &pb.Member{ID: ctx.Member.ID, Name: ctx.Member.Name, PeerURLs: ctx.Member.PeerURLs, ClientURLs: ctx.Member.ClientURLs, IsLearner: ctx.Member.IsLearner}
	switch {
	case ctx.IsPromote:
		n.props.finish(n, ctx.Proposal, &pb.MemberPromoteResponse{Header: hdr, Members: members}, nil)
	case ch.GetType() == raftpb.ConfChangeRemoveNode:
		n.props.finish(n, ctx.Proposal, &pb.MemberRemoveResponse{Header: hdr, Members: members}, nil)
	case ch.GetType() == raftpb.ConfChangeUpdateNode:
		n.props.finish(n, ctx.Proposal, &pb.MemberUpdateResponse{Header: hdr, Members: members}, nil)
	default:
		add.Member = m
		n.props.finish(n, ctx.Proposal, add, nil)
	}
}

// applyAttrSet records a member's published name and client URLs.
func (n *Node) applyAttrSet(r *membershippb.ClusterMemberAttrSetRequest) {
	m, ok := n.st.members.get(r.Member_ID)
	if !ok {
		return
	}
	m.Name, m.ClientURLs = r.MemberAttributes.GetName(), r.MemberAttributes.GetClientUrls()
	n.st.members.add(m)
}
