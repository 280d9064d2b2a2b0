package core

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// proposals are client writes on their way through raft.
type proposals struct {
	epoch, next uint64
	timeout     int64
	// byID finds a proposal when its entry is applied.
	byID map[uint64]*proposal
	// fifo orders proposals by deadline (they all get the same timeout),
	// so expiry is deterministic and cheap.
	fifo []*proposal
	// queued were dropped by raft (no leader) and wait to be proposed again.
	queued []*proposal
	// batch is what was proposed since the last flush: it goes to raft as
	// one MsgProp, so that a turn's writes cost one forward to the leader
	// and one MsgApp per follower (and one MsgAppResp back), not one each.
	batch []*proposal
}

type proposal struct {
	req  RequestID
	id   uint64
	data []byte
	// ir is what data encodes, kept for this member's apply (proposals.own).
	ir       *pb.InternalRaftRequest
	deadline int64
	done     bool
	// then, if set, gets the outcome instead of a client.
	then func(proto.Message, error)
	// cc, if set, is a membership change to propose instead of data.
	cc *raftpb.ConfChangeV2
	// leaderTerm, if set, is the term of the leadership that decided the
	// proposal (a lease's expiry, lease checkpoints): it goes to raft only
	// from this member as leader in that term, and is dropped, never
	// queued or forwarded, otherwise. etcd's leader likewise revokes an
	// expired lease only while it still leads. A revoke carried over to
	// the next leader would end a lease that leader has restarted and
	// renewed since; the next leader decides expiry on its own clock.
	leaderTerm uint64
}

func (ps *proposals) init(cfg Config) {
	ps.epoch = cfg.ProposalEpoch
	ps.timeout = int64(cfg.RequestTimeoutTicks)
	ps.byID = map[uint64]*proposal{}
}

// maxGapBetweenApplyAndCommit is etcd's back-pressure: past this many
// committed entries not yet applied, new writes are refused.
const maxGapBetweenApplyAndCommit = 5000

// propose encodes a write and hands it to raft.
func (n *Node) propose(r Request) {
	if n.rn.BasicStatus().GetCommit() > n.st.index+maxGapBetweenApplyAndCommit {
		n.respond(r.ID, nil, ErrTooManyRequests)
		return
	}
	// etcd takes a write only while the database's size plus the write's
	// cost stays below the quota.
	if cost := quotaCost(&r); cost > 0 && n.dbSize()+cost >= n.cfg.QuotaBackendBytes {
		n.raiseNoSpace()
		n.respond(r.ID, nil, ErrNoSpace)
		return
	}
	if g := r.LeaseGrant; g != nil && g.ID == 0 {
		// The id is chosen at proposal, as etcd does, so that every member
		// applies the same one.
		n.props.next++
		g.ID = int64((n.props.epoch + n.props.next) &^ (1 << 63))
	}
	n.proposeRequest(r.ID, &pb.InternalRaftRequest{
		Header:      &pb.RequestHeader{Username: r.user, AuthRevision: r.authRev},
		Put:         r.Put,
		DeleteRange: r.DeleteRange,
		Txn:         r.Txn,
		Compaction:  r.Compaction,
		Alarm:       r.Alarm,
		LeaseGrant:  r.LeaseGrant,
		LeaseRevoke: r.LeaseRevoke,
	}, nil)
}

// proposeInternal proposes a request of the node's own (a lease revoke,
// a checkpoint, a compaction); then, if set, gets its outcome.
func (n *Node) proposeInternal(ir *pb.InternalRaftRequest, then func(proto.Message, error)) {
	if then == nil {
		then = func(proto.Message, error) {}
	}
	n.proposeRequest(0, ir, then)
}

// proposeAsLeader proposes what only the leader of this term decides:
// see proposal.leaderTerm.
func (n *Node) proposeAsLeader(ir *pb.InternalRaftRequest) {
	before := len(n.props.batch)
	n.proposeInternal(ir, nil)
	if b := n.props.batch; len(b) > before {
		b[len(b)-1].leaderTerm = n.rn.BasicStatus().GetTerm()
	}
}

func (n *Node) proposeRequest(req RequestID, ir *pb.InternalRaftRequest, then func(proto.Message, error)) {
	ps := &n.props
	ps.next++
	id := ps.epoch + ps.next
	// A client's user and auth revision stay for apply to check; an
	// internal request has neither.
	ir.Header = &pb.RequestHeader{ID: id, Username: ir.GetHeader().GetUsername(), AuthRevision: ir.GetHeader().GetAuthRevision()}
	fail := func(err error) {
		if then != nil {
			then(nil, err)
		} else {
			n.respond(req, nil, err)
		}
	}
	data, err := proto.Marshal(ir)
	if err != nil {
		fail(fmt.Errorf("core: encode request: %w", err))
		return
	}
	if len(data) > n.cfg.MaxRequestBytes {
		fail(ErrRequestTooLarge)
		return
	}
	p := &proposal{req: req, id: id, data: data, ir: ir, deadline: n.ticks + ps.timeout, then: then}
	ps.byID[id] = p
	ps.fifo = append(ps.fifo, p)
	n.proposeData(p)
}

func (n *Node) proposeData(p *proposal) {
	if p.cc == nil {
		n.props.batch = append(n.props.batch, p)
		return
	}
	// A membership change keeps its place among the writes around it.
	n.flushProposals()
	n.proposed(p, n.rn.ProposeConfChange(p.cc))
}

// flushProposals hands the batch to raft as one MsgProp, as RawNode.Propose
// does for one entry; raft takes or drops the batch as a whole.
func (n *Node) flushProposals() {
	b := n.props.batch
	n.props.batch = nil
	if b = n.dropStaleLeaderWork(b); len(b) == 0 {
		return
	}
	ents := make([]*raftpb.Entry, len(b))
	for i, p := range b {
		ents[i] = &raftpb.Entry{Data: p.data}
	}
	err := n.rn.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: new(n.cfg.ID), Entries: ents})
	for _, p := range b {
		n.proposed(p, err)
	}
}

// dropStaleLeaderWork ends the proposals of a leadership this member no
// longer holds (it stepped down since, say on a message from a newer
// term) and returns the rest.
func (n *Node) dropStaleLeaderWork(b []*proposal) []*proposal {
	if !slices.ContainsFunc(b, func(p *proposal) bool { return p.leaderTerm != 0 }) {
		return b
	}
	st := n.rn.BasicStatus()
	leading := st.RaftState == raft.StateLeader
	return slices.DeleteFunc(b, func(p *proposal) bool {
		stale := p.leaderTerm != 0 && (!leading || p.leaderTerm != st.GetTerm())
		if stale {
			n.props.finish(n, p.id, nil, ErrNotLeader)
		}
		return stale
	})
}

func (n *Node) proposed(p *proposal, err error) {
	switch {
	case err == raft.ErrProposalDropped && p.leaderTerm != 0:
		// Raft refused it here (a leadership transfer is under way).
		// An expiry revoke comes again at the lessor's retry if the
		// leader keeps leading; dropped checkpoints are not retried, as
		// etcd's are not: the next renewal or promotion schedules them.
		n.props.finish(n, p.id, nil, err)
	case err == raft.ErrProposalDropped:
		n.props.queued = append(n.props.queued, p)
	case err != nil:
		n.props.finish(n, p.id, nil, err)
	}
}

// own returns the request that an entry's data encodes if this member
// proposed it and the entry holds the very bytes ir was encoded to (the
// header's ID is unique to the proposal): apply then takes the request
// as proposed instead of decoding the bytes again. Entries of other
// members, and this member's after a restart, are decoded. Only key
// space writes are taken so: decoding could only turn an empty byte
// field into an absent one, which the key space treats alike (it looks
// at lengths), and they are the requests that come by the thousand.
func (ps *proposals) own(data []byte) *pb.InternalRaftRequest {
	id, ok := headerID(data)
	if !ok {
		return nil
	}
	p := ps.byID[id]
	if p == nil || p.ir == nil || p.ir.Put == nil && p.ir.DeleteRange == nil && p.ir.Txn == nil || !bytes.Equal(p.data, data) {
		return nil
	}
	return p.ir
}

// headerID reads the ID of an encoded InternalRaftRequest's header
// (field 100, RequestHeader's field 1) without decoding the rest.
func headerID(data []byte) (uint64, bool) {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return 0, false
		}
		data = data[n:]
		if num != 100 || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, data); n < 0 {
				return 0, false
			}
			data = data[n:]
			continue
		}
		h, n := protowire.ConsumeBytes(data)
		if n < 0 {
			return 0, false
		}
		for len(h) > 0 {
			num, typ, n := protowire.ConsumeTag(h)
			if n < 0 {
				return 0, false
			}
			h = h[n:]
			if num == 1 && typ == protowire.VarintType {
				id, n := protowire.ConsumeVarint(h)
				return id, n >= 0
			}
			if n = protowire.ConsumeFieldValue(num, typ, h); n < 0 {
				return 0, false
			}
			h = h[n:]
		}
		return 0, false
	}
	return 0, false
}

// finish answers a proposal, if this member is waiting for it.
func (ps *proposals) finish(n *Node, id uint64, msg proto.Message, err error) bool {
	p := ps.byID[id]
	if p == nil {
		return false
	}
	delete(ps.byID, id)
	p.done = true
	if p.then != nil {
		p.then(msg, err)
	} else {
		n.respond(p.req, msg, err)
	}
	return true
}

// retry proposes again what raft dropped, once there is a leader.
func (ps *proposals) retry(n *Node) {
	if n.lead == raft.None || len(ps.queued) == 0 {
		return
	}
	q := ps.queued
	ps.queued = nil
	for _, p := range q {
		if !p.done {
			n.proposeData(p)
		}
	}
}

func (ps *proposals) leaderChanged(n *Node) { ps.retry(n) }

// expire fails proposals past their deadline with etcd's timeout error.
func (ps *proposals) expire(n *Node) {
	k := 0
	for k < len(ps.fifo) && (ps.fifo[k].done || ps.fifo[k].deadline <= n.ticks) {
		if p := ps.fifo[k]; !p.done {
			ps.finish(n, p.id, nil, ps.timeoutError(n, p))
		}
		k++
	}
	clear(ps.fifo[:k])
	ps.fifo = ps.fifo[k:]
}

// timeoutError is etcd's error for a proposal that timed out: no leader
// now, or (etcd's parseProposeCtxErr) a leader elected after the proposal
// was made, less than two election timeouts after it: the previous leader
// probably failed and took the proposal with it.
func (ps *proposals) timeoutError(n *Node, p *proposal) error {
	if n.lead == raft.None {
		return ErrNoLeader
	}
	start, elected := p.deadline-ps.timeout, n.leadElectedTick
	if start < elected && start > elected-2*int64(n.cfg.ElectionTicks) {
		return ErrTimeoutLeaderFail
	}
	return ErrTimeout
}

// leaseOverhead is etcd's estimate of a lease's cost.
const leaseOverhead = 64

// quotaCost is etcd's estimate of what a write adds to the database, for
// the space quota; requests that add nothing cost nothing.
func quotaCost(r *Request) int64 {
	const kvOverhead = 256
	switch {
	case r.Put != nil:
		return kvOverhead + int64(len(r.Put.Key)+len(r.Put.Value))
	case r.Txn != nil:
		return txnCost(r.Txn)
	case r.LeaseGrant != nil:
		return leaseOverhead
	}
	return 0
}

func txnCost(t *pb.TxnRequest) int64 {
	branch := func(ops []*pb.RequestOp) int64 {
		var c int64
		for _, u := range ops {
			if p := u.GetRequestPut(); p != nil {
				c += 256 + int64(len(p.Key)+len(p.Value))
			} else if nt := u.GetRequestTxn(); nt != nil {
				c += txnCost(nt)
			}
		}
		return c
	}
	return max(branch(t.Success), branch(t.Failure))
}

// raiseNoSpace proposes the NOSPACE alarm for this member, as etcd's quota
// check does, unless it is already raised.
func (n *Node) raiseNoSpace() {
	if n.st.alarms.has(n.cfg.ID, pb.AlarmType_NOSPACE) {
		return
	}
	n.proposeInternal(&pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: n.cfg.ID, Alarm: pb.AlarmType_NOSPACE}}, nil)
}

// readCtx encodes a read round's id as raft's request context.
func readCtx(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }
