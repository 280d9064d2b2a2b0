package core

import (
	"encoding/binary"

	"go.etcd.io/raft/v3"
)

// reads are linearizable reads waiting for raft's ReadIndex and then for
// apply to reach the index. All reads that arrive while a round is out are
// batched into the next round, as etcd does.
type reads struct {
	waiting []pendingRead
	// round is out to raft, its index not known yet.
	round *readRound
	// indexed rounds wait for apply to reach their index, in order.
	indexed []*readRound
	nextCtx uint64
	// catchUp is the commit index a restarted member found on its disk:
	// until it has applied that far its state is older than what it had
	// acknowledged, so serializable reads (local) wait for it.
	catchUp uint64
	local   []Request
}

type pendingRead struct {
	req      Request
	deadline int64
}

type readRound struct {
	ctx     uint64
	index   uint64
	started int64
	reads   []pendingRead
}

func (rs *reads) add(n *Node, r Request) {
	if n.bug(BugStaleRead) {
		n.servePermitted(r)
		return
	}
	rs.waiting = append(rs.waiting, pendingRead{req: r, deadline: n.ticks + int64(n.cfg.RequestTimeoutTicks)})
}

// start sends a ReadIndex for the waiting reads. A member asks only once
// it has applied an entry of the current term: before that its commit
// index may lag writes that were acknowledged before a restart or an
// election (raft's single-member ReadIndex path does not check this).
func (rs *reads) start(n *Node) {
	if rs.round != nil || len(rs.waiting) == 0 || n.lead == raft.None || n.st.term != n.term {
		return
	}
	rs.nextCtx++
	rs.round = &readRound{ctx: rs.nextCtx, started: n.ticks, reads: rs.waiting}
	rs.waiting = nil
	n.rn.ReadIndex(readCtx(rs.round.ctx))
}

// gotIndex records raft's answer to a round.
func (rs *reads) gotIndex(ctx []byte, index uint64) {
	if rs.round == nil || len(ctx) != 8 || binary.BigEndian.Uint64(ctx) != rs.round.ctx {
		return
	}
	rs.round.index = index
	rs.indexed = append(rs.indexed, rs.round)
	rs.round = nil
}

// serve answers the rounds whose index has been applied, and the
// serializable reads that waited for a restart's catch-up.
func (rs *reads) serve(n *Node) {
	if len(rs.local) > 0 && n.localReadsReady() {
		for _, r := range rs.local {
			n.serveRead(r)
		}
		clear(rs.local)
		rs.local = rs.local[:0]
	}
	k := 0
	for k < len(rs.indexed) && (rs.indexed[k].index <= n.st.index || n.bug(BugReadBeforeApplied)) { // planted: served before the read index is applied
		for _, pr := range rs.indexed[k].reads {
			n.servePermitted(pr.req)
		}
		k++
	}
	clear(rs.indexed[:k])
	rs.indexed = rs.indexed[k:]
}

// leaderChanged ends a round in flight once a new leader is known: raft
// forgets pending read index requests when leadership changes, and the
// round's reads fail with ErrLeaderChanged, as etcd's do (clients retry
// on it). While no leader is known the round waits for one.
func (rs *reads) leaderChanged(n *Node) {
	if rs.round == nil || n.lead == raft.None {
		return
	}
	for _, pr := range rs.round.reads {
		n.respond(pr.req.ID, nil, ErrLeaderChanged)
	}
	rs.round = nil
}

// expire asks again for a round raft may have dropped (a lost message,
// say; etcd retries too) and fails reads past their deadline.
func (rs *reads) expire(n *Node) {
	if r := rs.round; r != nil {
		if n.ticks-r.started >= int64(max(n.cfg.ElectionTicks/2, 1)) && n.lead != raft.None && n.st.term == n.term {
			rs.nextCtx++
			r.ctx, r.started = rs.nextCtx, n.ticks
			n.rn.ReadIndex(readCtx(r.ctx))
		}
		if r.reads = failExpired(n, r.reads); len(r.reads) == 0 {
			rs.round = nil
		}
	}
	rs.waiting = failExpired(n, rs.waiting)
}

// failExpired answers the reads past their deadline with a timeout and
// returns the others.
func failExpired(n *Node, prs []pendingRead) []pendingRead {
	keep := prs[:0]
	for _, pr := range prs {
		if pr.deadline <= n.ticks {
			n.respond(pr.req.ID, nil, ErrTimeout)
			continue
		}
		keep = append(keep, pr)
	}
	clear(prs[len(keep):])
	return keep
}

// serveRead answers a linearizable read now that it is safe.
func (n *Node) serveRead(r Request) {
	switch {
	case r.Range != nil:
		resp, err := executeRange(n.kv, r.Range)
		n.respondRead(r.ID, resp, err)
	case r.Txn != nil:
		resp, err := n.applyTxn(r.Txn, false)
		n.respondTxn(r.ID, resp, err)
	case r.ReadIndex:
		n.out.Responses = append(n.out.Responses, Response{ID: r.ID, View: n.kv.View(), Header: n.header(int64(n.kv.Rev())), AuthEnabled: n.st.auth.Enabled()})
	case r.LeaseKeepAlive != nil, r.LeaseTimeToLive != nil:
		n.serveLease(r)
	case r.MemberList != nil:
		n.respond(r.ID, n.memberListResponse(), nil)
	case r.Downgrade != nil:
		n.serveDowngrade(r)
	}
}

// readRange serves a range: from the local state if serializable, else
// after a read index round.
func (n *Node) readRange(r Request) {
	if r.Range.Serializable {
		n.readLocal(r)
		return
	}
	n.reads.add(n, r)
}

func (n *Node) readTxn(r Request) {
	if isTxnSerializable(r.Txn) {
		n.readLocal(r)
		return
	}
	n.reads.add(n, r)
}

// readLocal serves a serializable read at once, unless a restart has yet
// to apply what the member's log had committed: a client that saw
// revision r before the restart must not see less after it.
func (n *Node) readLocal(r Request) {
	if n.localReadsReady() {
		n.serveRead(r)
		return
	}
	n.reads.local = append(n.reads.local, r)
}

// localReadsReady reports whether the applied state is at least what the
// member had committed when it started: the point from which serializable
// reads may be served. Drivers that serve such reads off the loop, from
// View, wait for it too.
func (n *Node) localReadsReady() bool { return n.st.index >= n.reads.catchUp }

// LocalReadsReady is localReadsReady for drivers.
func (n *Node) LocalReadsReady() bool { return n.localReadsReady() }
