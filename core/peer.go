package core

import (
	"errors"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core/auth"
)

// PeerMessage is a member-to-member request outside raft: a request only
// the leader can answer (a lease keep-alive or time-to-live query, since
// the leader alone keeps lease expiry; a learner's promotion, since the
// leader alone knows how far it is; with the strict reconfiguration check,
// adding a member or removing a voter, since the leader alone hears from
// every voter) that a follower forwards, and the leader's answer. Drivers
// carry them like raft messages.
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
	// Adding a member (with the id the asking member's driver chose) or
	// removing a voter needs the leader's view of which voters are up.
	MemberAdd        *pb.MemberAddRequest     `json:",omitempty"`
	NewMemberID      uint64                   `json:",omitempty"`
	MemberAddResp    *pb.MemberAddResponse    `json:",omitempty"`
	MemberRemove     *pb.MemberRemoveRequest  `json:",omitempty"`
	MemberRemoveResp *pb.MemberRemoveResponse `json:",omitempty"`
	// Caller is who made a forwarded request, for the leader to check it
	// as that user: forwarding must neither widen nor lose a client's
	// rights.
	Caller *Caller `json:",omitempty"`
	// Index, on the answer to a member's addition or removal, is the
	// leader's applied index: the asking member answers its client once it
	// has applied as far, as an etcd member answers a membership change
	// once it has applied it.
	Index uint64 `json:",omitempty"`
	// Err is the answer's error, as core's error text.
	Err string `json:",omitempty"`
	// Removed tells a member that the cluster removed it: it stops, as an
	// etcd member does when its peers refuse it.
	Removed bool `json:",omitempty"`
}

// Caller is a forwarded request's credentials, as Request's fields of the
// same names hold them. When the forwarding member found the user (auth
// was on there), it is TokenUser, with the auth revision it checked the
// request at as TokenRevision: the leader refuses the request if its auth
// store changed since, as apply refuses a proposal. Otherwise they are the
// client's own.
type Caller struct {
	Token         string `json:",omitempty"`
	TokenUser     string `json:",omitempty"`
	TokenRevision uint64 `json:",omitempty"`
	CertUser      string `json:",omitempty"`
}

// callerOf is who made r, for the leader r is forwarded to.
func callerOf(r Request) *Caller {
	if r.user != "" {
		return &Caller{TokenUser: r.user, TokenRevision: r.authRev}
	}
	if r.Token == "" && r.TokenUser == "" && r.CertUser == "" {
		return nil
	}
	return &Caller{Token: r.Token, TokenUser: r.TokenUser, TokenRevision: r.TokenRevision, CertUser: r.CertUser}
}

// request is the forwarded request m carries, as its caller made it.
func (m *PeerMessage) request(id RequestID) Request {
	r := Request{ID: id, LeaseKeepAlive: m.KeepAlive, LeaseTimeToLive: m.TimeToLive, MemberPromote: m.MemberPromote,
		MemberAdd: m.MemberAdd, NewMemberID: m.NewMemberID, MemberRemove: m.MemberRemove}
	if c := m.Caller; c != nil {
		r.Token, r.TokenUser, r.TokenRevision, r.CertUser = c.Token, c.TokenUser, c.TokenRevision, c.CertUser
	}
	return r
}

// isLink says whether m is a link heartbeat: it only says its sender is
// there (a forward has a sequence number, an answer a response or error).
func (m *PeerMessage) isLink() bool {
	return m.Seq == 0 && m.kind() == 0 && !m.Removed && m.Err == ""
}

func (m *PeerMessage) isReply() bool {
	return m.KeepAliveResp != nil || m.TimeToLiveResp != nil || m.MemberPromoteResp != nil ||
		m.MemberAddResp != nil || m.MemberRemoveResp != nil || m.Err != ""
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
	peerMemberAdd
	peerMemberRemove
)

func (m *PeerMessage) kind() peerKind {
	switch {
	case m.KeepAlive != nil || m.KeepAliveResp != nil:
		return peerKeepAlive
	case m.TimeToLive != nil || m.TimeToLiveResp != nil:
		return peerTimeToLive
	case m.MemberPromote != nil || m.MemberPromoteResp != nil:
		return peerPromote
	case m.MemberAdd != nil || m.MemberAddResp != nil:
		return peerMemberAdd
	case m.MemberRemove != nil || m.MemberRemoveResp != nil:
		return peerMemberRemove
	}
	return 0
}

// peerOrigin is a request a peer forwarded here.
type peerOrigin struct {
	from, seq uint64
}

// forwardToLeader sends a request only the leader can answer to it.
func (n *Node) forwardToLeader(r Request) {
	if n.lead == 0 {
		n.respond(r.ID, nil, ErrNoLeader)
		return
	}
	n.nextSeq++
	m := &PeerMessage{From: n.cfg.ID, To: n.lead, Seq: n.nextSeq,
		KeepAlive: r.LeaseKeepAlive, TimeToLive: r.LeaseTimeToLive, MemberPromote: r.MemberPromote,
		MemberAdd: r.MemberAdd, NewMemberID: r.NewMemberID, MemberRemove: r.MemberRemove, Caller: callerOf(r)}
	n.forwards[n.nextSeq] = forward{req: r.ID, deadline: n.ticks + int64(n.cfg.RequestTimeoutTicks), kind: m.kind()}
	n.forwardOrder = append(n.forwardOrder, n.nextSeq)
	n.out.Peer = append(n.out.Peer, m)
}

// StepPeer hands the node a member-to-member message.
func (n *Node) StepPeer(m *PeerMessage) {
	n.peerHeard(m.From)
	if m.Removed {
		if m.To == n.cfg.ID {
			n.log.Warn("a peer says this member was removed from the cluster", "peer", m.From)
			n.fail(ErrMemberRemoved)
		}
		return
	}
	if m.isLink() {
		return
	}
	if m.isReply() {
		f, ok := n.forwards[m.Seq]
		if !ok || (m.Err == "" && m.kind() != f.kind) {
			return // timed out already, or not the answer to it
		}
		delete(n.forwards, m.Seq)
		if m.Err != "" {
			n.respond(f.req, nil, peerError(m.Err))
			return
		}
		if m.Index > n.st.index {
			n.held = append(n.held, heldReply{index: m.Index, req: f.req, msg: m.answer(), deadline: f.deadline})
			return
		}
		n.respond(f.req, m.answer(), nil)
		return
	}
	if n.seenPeer(m.From, m.Seq) {
		return
	}
	n.nextPeerReq++
	id := peerRequestBit | n.nextPeerReq
	n.peerWaits[id] = peerOrigin{from: m.From, seq: m.Seq}
	n.Request(m.request(id))
}

// peerSeenMax is how many recent forwards per peer the leader remembers.
// A duplicate arrives within moments of its original, long before the
// peer has forwarded this many more.
const peerSeenMax = 64

// seenPeer reports whether the forward seq from a peer was taken already,
// and remembers it if not. A duplicated forward (a network may deliver a
// message twice) must not be carried out twice: a second promotion,
// addition or removal would answer the asking member with an error for a
// change that succeeded.
func (n *Node) seenPeer(from, seq uint64) bool {
	seen := n.peerSeen[from]
	if slices.Contains(seen, seq) {
		return true
	}
	if len(seen) == peerSeenMax {
		seen = seen[1:]
	}
	n.peerSeen[from] = append(seen, seq)
	return false
}

// answer is the response a reply carries.
func (m *PeerMessage) answer() proto.Message {
	switch {
	case m.KeepAliveResp != nil:
		return m.KeepAliveResp
	case m.TimeToLiveResp != nil:
		return m.TimeToLiveResp
	case m.MemberPromoteResp != nil:
		return m.MemberPromoteResp
	case m.MemberAddResp != nil:
		return m.MemberAddResp
	case m.MemberRemoveResp != nil:
		return m.MemberRemoveResp
	}
	return nil
}

// heldReply is the leader's answer to a membership change this member
// forwarded, waiting for this member to apply the change.
type heldReply struct {
	index    uint64
	req      RequestID
	msg      proto.Message
	deadline int64
}

// releaseHeld answers the held replies this member has applied far
// enough for, and fails those that waited too long.
func (n *Node) releaseHeld() {
	keep := n.held[:0]
	for _, h := range n.held {
		switch {
		case h.index <= n.st.index:
			n.respond(h.req, h.msg, nil)
		case h.deadline <= n.ticks:
			n.respond(h.req, nil, ErrTimeout)
		default:
			keep = append(keep, h)
		}
	}
	n.held = keep
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
	case *pb.MemberAddResponse:
		reply.MemberAddResp, reply.Index = msg, n.confChangeIndex()
	case *pb.MemberRemoveResponse:
		reply.MemberRemoveResp = msg
		if _, ok := n.st.members.get(o.from); ok {
			reply.Index = n.confChangeIndex() // a member that removed itself may never apply it
		}
	}
	if !reply.isReply() {
		reply.Err = ErrUnknownRequest.Error()
	}
	n.out.Peer = append(n.out.Peer, reply)
	return true
}

// confChangeIndex is the index of the membership change being answered:
// its answer is made while its entry is applied, before the applied index
// moves to it.
func (n *Node) confChangeIndex() uint64 { return n.st.index + 1 }

// peerErrors are the errors a leader may answer a forwarded request with.
var peerErrors = []error{ErrLeaseNotFound, ErrNotLeader, ErrNoLeader, ErrTimeout, ErrLeaderChanged, ErrStopped,
	ErrMemberNotFound, ErrMemberNotLearner, ErrLearnerNotReady, ErrMemberRemoved, ErrNotEnoughStarted,
	ErrTimeoutLeaderFail, ErrUnhealthy, ErrMemberExist, ErrPeerURLExist, ErrMemberBadURLs, ErrTooManyLearners,
	ErrTooManyRequests, ErrRequestTooLarge, ErrNoSpace, ErrCorrupt, ErrUnknownRequest,
	auth.ErrUserEmpty, auth.ErrUserNotFound, auth.ErrPermissionDenied, auth.ErrInvalidAuthToken,
	auth.ErrAuthOldRevision}

// peerError maps an error's text from a peer back to core's sentinel.
func peerError(text string) error {
	for _, e := range peerErrors {
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
