package core

import (
	"go.etcd.io/raft/v3/raftpb"
)

// maxMsgBytes is raft's MaxSizePerMsg here; coalesced appends stay within
// it too.
const maxMsgBytes = 1 << 20

// coalesceMessages merges the raft messages of one Ready that say in one
// message what they say in several, in place. Raft emits a MsgApp per
// follower for every proposal it steps and every commit advance (an empty
// one carrying the new commit index), and a follower answers each with its
// own MsgAppResp: under load that is several messages per follower per
// loop turn, each marshalled, sent, stepped and, on the follower, waiting
// for its own log write before its answer goes back. A follower that gets
// the merged message does what it would have done with the parts in
// order, and raft itself sends such multi-entry appends.
//
// Only consecutive messages to the same member are merged (a message to
// another member in between does not matter: each member's messages go on
// their own stream, in order), and only
//   - MsgApp b into MsgApp a when b's entries continue a's in the same
//     term: a gets b's entries after its own and b's (newer) commit index;
//   - MsgAppResp b into MsgAppResp a when neither rejects and they are of
//     one term: a takes the larger index (the leader only moves its match
//     index forward, so the smaller one says nothing more).
func coalesceMessages(ms []*raftpb.Message) []*raftpb.Message {
	if len(ms) < 2 {
		return ms
	}
	// last is, per destination, the position in out of the newest message
	// to it. A few destinations: a slice beats a map, and keeps the pass
	// free of map iteration.
	type dest struct {
		to  uint64
		pos int
	}
	var last []dest
	out := ms[:0]
	for _, m := range ms {
		to := m.GetTo()
		k := -1
		for i := range last {
			if last[i].to == to {
				k = i
				break
			}
		}
		if k >= 0 && mergeInto(out[last[k].pos], m) {
			continue
		}
		out = append(out, m)
		if k >= 0 {
			last[k].pos = len(out) - 1
		} else {
			last = append(last, dest{to: to, pos: len(out) - 1})
		}
	}
	clear(ms[len(out):])
	return out
}

// mergeInto folds b into a if they can be one message (see
// coalesceMessages) and reports whether it did.
func mergeInto(a, b *raftpb.Message) bool {
	if a.GetType() != b.GetType() || a.GetTerm() != b.GetTerm() || a.GetFrom() != b.GetFrom() {
		return false
	}
	switch a.GetType() {
	case raftpb.MsgApp:
		ae, be := a.GetEntries(), b.GetEntries()
		if b.GetIndex() != a.GetIndex()+uint64(len(ae)) {
			return false
		}
		prevTerm := a.GetLogTerm()
		if len(ae) > 0 {
			prevTerm = ae[len(ae)-1].GetTerm()
		}
		if b.GetLogTerm() != prevTerm || b.GetCommit() < a.GetCommit() {
			return false
		}
		if len(be) > 0 {
			if entriesBytes(ae)+entriesBytes(be) > maxMsgBytes {
				return false
			}
			// A new slice: a's may share its array with raft's log.
			ents := make([]*raftpb.Entry, 0, len(ae)+len(be))
			a.Entries = append(append(ents, ae...), be...)
		}
		a.Commit = b.Commit
		return true
	case raftpb.MsgAppResp:
		if a.GetReject() || b.GetReject() {
			return false
		}
		if b.GetIndex() > a.GetIndex() {
			a.Index = b.Index
		}
		return true
	}
	return false
}

func entriesBytes(es []*raftpb.Entry) int {
	n := 0
	for _, e := range es {
		n += len(e.GetData())
	}
	return n
}
