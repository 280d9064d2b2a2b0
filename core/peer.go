package core

import (
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// PeerMessage is a member-to-member request outside raft: a request only
// the leader can answer (a lease keep-alive or time-to-live query, since
// the leader alone keeps lease expiry; a learner's promotion, since the
// leader alone knows how far it is) that a follower forwards, and the
// leader's answer. Drivers carry them like raft messages.
type PeerMessage struct {
	From, To uint64
	// Seq ties an answer to its request on the asking member.
	Seq uint64
	// Exactly one of these is set.
	KeepAlive      *pb.LeaseKeepAliveRequest   `json:",omitempty"`
	KeepAliveResp  *pb.LeaseKeepAliveResponse  `json:",omitempty"`
	TimeToLive     *pb.LeaseTimeToLiveRequest  `json:",omitempty"`
	TimeToLiveResp *pb.LeaseTimeToLiveResponse `json:",omitempty"`
	// Promoting a learner needs the leader's view of its progress.
	MemberPromote     *pb.MemberPromoteRequest  `json:",omitempty"`
	MemberPromoteResp *pb.MemberPromoteResponse `json:",omitempty"`
	// Err is the answer's error, as core's error text.
	Err string `json:",omitempty"`
	// Removed tells a member that the cluster removed it: it stops, as an
	// etcd member does when its peers refuse it.
	Removed bool `json:",omitempty"`
}

func (m *PeerMessage) isReply() bool {
	return m.KeepAliveResp != nil || m.TimeToLiveResp != nil || m.MemberPromoteResp != nil || m.Err != ""
}

// forward is a request this member sent to the leader.
type forward struct {
	req      RequestID
	deadline int64
	// kind is the request's kind; an answer of another kind is not its.
	kind peerKind
}

type peerKind uint8

const (
	peerKeepAlive peerKind = iota + 1
	peerTimeToLive
	peerPromote
)

func (m *PeerMessage) kind() peerKind {
	switch {
	case m.KeepAlive != nil || m.KeepAliveResp != nil:
		return peerKeepAlive
	case m.TimeToLive != nil || m.TimeToLiveResp != nil:
		return peerTimeToLive
	case m.MemberPromote != nil || m.MemberPromoteResp != nil:
		return peerPromote
	}
	return 0
}

// peerOrigin is a request a peer forwarded here.
type peerOrigin struct {
	from, seq uint64
}

// forwardToLeader sends a lease request to the leader.
func (n *Node) forwardToLeader(r Request) {
	if n.lead == 0 {
		n.respond(r.ID, nil, ErrNoLeader)
		return
	}
	n.nextSeq++
	m := &PeerMessage{From: n.cfg.ID, To: n.lead, Seq: n.nextSeq,
		KeepAlive: r.LeaseKeepAlive, TimeToLive: r.LeaseTimeToLive, MemberPromote: r.MemberPromote}
	n.forwards[n.nextSeq] = forward{req: r.ID, deadline: n.ticks + int64(n.cfg.RequestTimeoutTicks), kind: m.kind()}
	n.forwardOrder = append(n.forwardOrder, n.nextSeq)
	n.out.Peer = append(n.out.Peer, m)
}

// StepPeer hands the node a member-to-member message.
func (n *Node) StepPeer(m *PeerMessage) {
	if m.Removed {
		if m.To == n.cfg.ID {
			n.log.Warn("a peer says this member was removed from the cluster", "peer", m.From)
			n.fail(ErrMemberRemoved)
		}
		return
	}
	if m.isReply() {
		f, ok := n.forwards[m.Seq]
		if !ok || (m.Err == "" && m.kind() != f.kind) {
			return // timed out already, or not the answer to it
		}
		delete(n.forwards, m.Seq)
		var err error
		if m.Err != "" {
			err = peerError(m.Err)
		}
		switch {
		case m.KeepAliveResp != nil:
			n.respond(f.req, m.KeepAliveResp, err)
		case m.TimeToLiveResp != nil:
			n.respond(f.req, m.TimeToLiveResp, err)
		case m.MemberPromoteResp != nil:
			n.respond(f.req, m.MemberPromoteResp, err)
		default:
			n.respond(f.req, nil, err)
		}
		return
	}
	n.nextPeerReq++
	id := peerRequestBit | n.nextPeerReq
	n.peerWaits[id] = peerOrigin{from: m.From, seq: m.Seq}
	n.Request(Request{ID: id, LeaseKeepAlive: m.KeepAlive, LeaseTimeToLive: m.TimeToLive, MemberPromote: m.MemberPromote})
}

// replyPeer turns the response to a forwarded request into the reply.
func (n *Node) replyPeer(r Response) bool {
	o, ok := n.peerWaits[r.ID]
	if !ok {
		return false
	}
	delete(n.peerWaits, r.ID)
	reply := &PeerMessage{From: n.cfg.ID, To: o.from, Seq: o.seq}
	if r.Err != nil {
		reply.Err = r.Err.Error()
	}
	switch msg := r.Msg.(type) {
	case *pb.LeaseKeepAliveResponse:
		reply.KeepAliveResp = msg
	case *pb.LeaseTimeToLiveResponse:
		reply.TimeToLiveResp = msg
	case *pb.MemberPromoteResponse:
		reply.MemberPromoteResp = msg
	}
	if reply.Err == "" && reply.KeepAliveResp == nil && reply.TimeToLiveResp == nil && reply.MemberPromoteResp == nil {
		reply.Err = ErrUnknownRequest.Error()
	}
	n.out.Peer = append(n.out.Peer, reply)
	return true
}

// peerError maps an error's text from a peer back to core's sentinel.
func peerError(text string) error {
	for _, e := range []error{ErrLeaseNotFound, ErrNotLeader, ErrNoLeader, ErrTimeout, ErrLeaderChanged, ErrStopped,
		ErrMemberNotFound, ErrMemberNotLearner, ErrLearnerNotReady, ErrMemberRemoved, ErrNotEnoughStarted,
		ErrTimeoutLeaderFail} {
		if e.Error() == text {
			return e
		}
	}
	return errors.New(text)
}

// expireForwards fails forwarded requests whose leader never answered.
func (n *Node) expireForwards() {
	k := 0
	for k < len(n.forwardOrder) {
		seq := n.forwardOrder[k]
		f, ok := n.forwards[seq]
		if ok && f.deadline > n.ticks {
			break
		}
		if ok {
			delete(n.forwards, seq)
			n.respond(f.req, nil, ErrTimeout)
		}
		k++
	}
	n.forwardOrder = n.forwardOrder[k:]
}
