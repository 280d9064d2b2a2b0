package sim

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
)

// historyScanUs is how often the checkers copy the members' new events,
// so that compactions do not take the history the checks need.
const historyScanUs = 100_000

// compaction is a compaction that took effect: its revision and when it
// was first applied.
type compaction struct{ rev, at int64 }

// history is the key space's history as the members applied it: the
// state at baseRev (empty at 0) and every event after it, up to
// scannedTo. A compaction that outran the copying moves baseRev up.
type history struct {
	base      map[string]*mvccpb.KeyValue
	baseRev   int64
	events    []*mvccpb.Event
	scannedTo int64
}

// noteCompaction records a compaction request applied for the first time:
// it takes effect if it is above the compactions before it.
func (c *checkers) noteCompaction(r *pb.CompactionRequest) {
	if r.Revision > c.compactRev() {
		c.compactions = append(c.compactions, compaction{rev: r.Revision, at: c.w.now})
	}
}

// compactRev is the newest compaction's revision (0: none).
func (c *checkers) compactRev() int64 {
	if len(c.compactions) == 0 {
		return 0
	}
	return c.compactions[len(c.compactions)-1].rev
}

// compactedAbove reports whether a compaction above rev (at or above, with
// orEqual) took effect by time at.
func (c *checkers) compactedAbove(rev, at int64, orEqual bool) (compaction, bool) {
	for _, cp := range c.compactions {
		if cp.at <= at && (cp.rev > rev || orEqual && cp.rev == rev) {
			return cp, true
		}
	}
	return compaction{}, false
}

// scanHistory copies the events applied since the last scan from a
// member that still has them all: every revision has at least one
// event, so a copy must run on from the last one without a gap. A member
// that compacted them away, or installed a snapshot past them, does not
// have them; if none has, the history starts over from the newest
// member's state.
func (c *checkers) scanHistory() {
	h := &c.hist
	var newest *member
	for _, m := range c.w.serving() {
		if !m.up || m.node == nil || m.node.Rev() <= h.scannedTo {
			continue
		}
		if newest == nil || m.node.Rev() > newest.node.Rev() {
			newest = m
		}
		if evs, ok := eventsSince(m, h.scannedTo); ok {
			h.events, h.scannedTo = append(h.events, evs...), m.node.Rev()
			return
		}
	}
	if newest == nil {
		return
	}
	v, _ := newest.node.View()
	rr, err := core.ExecuteRange(v, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		return
	}
	h.base, h.baseRev, h.events, h.scannedTo = map[string]*mvccpb.KeyValue{}, newest.node.Rev(), nil, newest.node.Rev()
	for _, kv := range rr.Kvs {
		h.base[string(kv.Key)] = kv
	}
	c.w.trace.logf(c.w.now, "history: no member has the events after %d; checks start again at %d", h.scannedTo, h.baseRev)
}

// eventsSince returns m's events after rev, if it has them all.
func eventsSince(m *member, rev int64) ([]*mvccpb.Event, bool) {
	var evs []*mvccpb.Event
	next := rev + 1
	err := m.node.ScanEvents(rev+1, func(ev *mvccpb.Event) bool {
		r := ev.Kv.ModRevision
		if r != next && r != next-1 {
			return false
		}
		next = r + 1
		evs = append(evs, proto.Clone(ev).(*mvccpb.Event))
		return true
	})
	return evs, err == nil && next == m.node.Rev()+1
}

// scheduleHistoryScans copies the history now and then for the whole run.
func (c *checkers) scheduleHistoryScans() {
	c.w.after(historyScanUs, func() {
		c.scanHistory()
		if !c.w.stopping {
			c.scheduleHistoryScans()
		}
	})
}

// stateAt is group g's keys at revision rev, from the history, as a model
// state with every revision known; ok is false if the history does not
// reach back (or forward) to rev.
func (h *history) stateAt(g int, rev int64) (groupState, bool) {
	var s groupState
	if rev < h.baseRev || rev > h.scannedTo {
		return s, false
	}
	prefix := groupKey(g, 0)
	prefix = prefix[:len(prefix)-1]
	set := func(kv *mvccpb.KeyValue, del bool) {
		if string(kv.Key[:len(kv.Key)-1]) != prefix {
			return
		}
		k := &s.keys[keyIndex(string(kv.Key))]
		if del {
			*k = keyState{}
			return
		}
		*k = keyState{exists: true, value: string(kv.Value), mod: kv.ModRevision, create: kv.CreateRevision, version: kv.Version}
	}
	for _, kv := range h.base { //core:maporder-ok: each key set once
		set(kv, false)
	}
	for _, ev := range h.events {
		if ev.Kv.ModRevision > rev {
			break
		}
		set(ev.Kv, ev.Type == mvccpb.Event_DELETE)
	}
	return s, true
}

// checkCompactions checks every read at a past revision and every
// compaction against the compactions that took effect: a linearizable
// read below a compaction applied before it was called fails with
// ErrCompacted, a read at or above every compaction applied before it
// returned succeeds, and returns the state at its revision exactly (by
// the history, with the limit, count, sort and keys-only it asked for);
// ErrCompacted needs a compaction above the revision; ErrFutureRev only
// for a revision nobody had seen.
func (c *checkers) checkCompactions() {
	for _, op := range c.history {
		if op.Unknown || op.Failed {
			continue
		}
		switch op.Kind {
		case opRangeAt:
			c.checkRangeAt(op)
		case opCompact:
			c.checkCompact(op)
		}
	}
}

func (c *checkers) checkRangeAt(op *Op) {
	q := op.Req.Range
	rev, linearizable := q.Revision, !q.Serializable
	switch op.Err {
	case errKindCompacted:
		if _, ok := c.compactedAbove(rev, op.Return, false); !ok {
			c.fail("compaction: %s: no compaction above %d had been applied", op, rev)
		}
		return
	case errKindFutureRev:
		if linearizable && rev <= op.Seen {
			c.fail("compaction: %s: revision %d had been seen before the read", op, rev)
		}
		return
	}
	if cp, ok := c.compactedAbove(rev, op.Call, false); ok && linearizable {
		c.fail("compaction: %s succeeded, but the compaction at %d was applied at %dus, before it", op, cp.rev, cp.at)
		return
	}
	s, ok := c.histOf(op).stateAt(op.Group, rev)
	r, _ := op.Resp.(*pb.RangeResponse)
	if ok && (r == nil || !checkRange(&s, op.Group, keysOf(q.Key, q.RangeEnd), q, r, rev)) {
		c.fail("history: %s does not match the state at %d", op, rev)
	}
}

func (c *checkers) checkCompact(op *Op) {
	rev := op.Req.Compaction.Revision
	switch op.Err {
	case errKindCompacted:
		if _, ok := c.compactedAbove(rev, op.Return, true); !ok {
			c.fail("compaction: %s: refused as compacted, but no compaction at or above %d had been applied", op, rev)
		}
	case errKindFutureRev:
		if rev <= op.Seen {
			c.fail("compaction: %s: revision %d had been seen before the compaction", op, rev)
		}
	default:
		if cp, ok := c.compactedAbove(rev, op.Call, true); ok {
			c.fail("compaction: %s succeeded, but the compaction at %d was applied at %dus, before it", op, cp.rev, cp.at)
		}
	}
}
