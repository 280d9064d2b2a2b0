package watch

import (
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core/internal/planted"
	"github.com/detcd/detcd/core/mvcc"
)

// Notify delivers a write transaction's changes, all at revision rev, to
// the synced watchers whose range they touch. A watcher whose stream has
// no credit for them falls behind and will catch up from history.
func (h *Hub) Notify(rev int64, tx *mvcc.Txn) {
	if len(h.byKey) == 0 && len(h.ranges) == 0 {
		return
	}
	touched := false
	tx.ChangedKeys(func(k string) {
		touched = touched || len(h.byKey[k]) > 0 || len(h.ranges) > 0
	})
	if !touched {
		return
	}
	type batch struct {
		w   *watcher
		evs []*mvccpb.Event
	}
	var batches []*batch
	index := map[*watcher]*batch{}
	add := func(w *watcher, ev *mvccpb.Event) {
		if w.next > rev || !w.wants(ev) {
			return
		}
		b := index[w]
		if b != nil && planted.Enabled && h.Bug == planted.WatchNotifyFirstOnly {
			return // planted: one event per watcher and revision
		}
		if b == nil {
			b = &batch{w: w}
			index[w] = b
			batches = append(batches, b)
		}
		b.evs = append(b.evs, ev)
	}
	for _, ev := range tx.Events() {
		for _, w := range h.byKey[string(ev.Kv.Key)] {
			add(w, ev)
		}
		for _, w := range h.ranges {
			if w.contains(ev.Kv.Key) {
				add(w, ev)
			}
		}
	}
	sort.Slice(batches, func(i, j int) bool { return batches[i].w.seq < batches[j].w.seq })
	hdr := h.header(rev) // shared: responses are never changed once made
	for _, b := range batches {
		w := b.w
		resp := &pb.WatchResponse{Header: hdr, WatchId: w.id, Events: h.withPrev(w, b.evs)}
		if !h.fits(w.s, resp) {
			w.next = rev
			h.unsync(w)
			continue
		}
		h.emit(w.s, resp, w.fragment)
		w.next, w.eventsSent = rev+1, true
	}
}

// fits reports whether a stream has the credit for a response. A stream
// with nothing outstanding takes any one response, however large.
func (h *Hub) fits(s *stream, resp *pb.WatchResponse) bool {
	return s.credit >= s.charge(resp) || s.credit == s.max
}

// charge is the credit a response takes: its size, but at least a
// StreamResponsesMax-th of the stream's credit.
func (s *stream) charge(resp *pb.WatchResponse) int {
	return max(size(resp), s.minCharge)
}

// withPrev copies events for a watcher, adding the previous key-values if
// it asked for them (not for creations, as etcd does).
func (h *Hub) withPrev(w *watcher, evs []*mvccpb.Event) []*mvccpb.Event {
	if !w.prevKV {
		return evs
	}
	out := make([]*mvccpb.Event, len(evs))
	for i, ev := range evs {
		c := &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		if !(ev.Type == mvccpb.Event_PUT && ev.Kv.CreateRevision == ev.Kv.ModRevision) {
			c.PrevKv = h.store.PrevKV(ev.Kv.Key, mvcc.Revision(ev.Kv.ModRevision))
		}
		out[i] = c
	}
	return out
}

// Pending reports whether unsynced watchers can make progress now.
func (h *Hub) Pending() bool {
	for _, w := range h.unsynced {
		if !w.cancelled && w.s.ready() {
			return true
		}
	}
	return false
}

// ready: an unsynced watcher catches up only once its stream has drained
// at least half its credit, so that a slow stream gets its events in
// batches rather than one at a time.
func (s *stream) ready() bool { return s.credit >= s.max/2 }

// Step lets unsynced watchers catch up from history, visiting at most
// budget stored events in all (one scan, whatever the number of watchers).
func (h *Hub) Step(budget int) {
	if len(h.unsynced) == 0 || budget <= 0 {
		return
	}
	cur := h.rev()
	compact := int64(h.store.CompactRev())
	for _, s := range h.order {
		s.slots = s.credit / s.minCharge
	}
	var group []*watcher
	for _, w := range h.unsynced {
		switch {
		case w.cancelled || !w.s.ready() || w.s.slots <= 0:
			// A stream takes at most as many catch-up responses as it has
			// credit for: the others would be made only to be dropped.
		case w.next > cur:
			// It starts in the future (a snapshot put the store behind it):
			// nothing to catch up.
			h.sync(w)
		case w.next < compact:
			// The history it needs is gone: cancel it with the compaction
			// revision, as etcd does (with a zero header revision).
			h.remove(w)
			h.emit(w.s, &pb.WatchResponse{Header: h.header(0), WatchId: w.id, CompactRevision: compact, Canceled: true}, false)
		default:
			group = append(group, w)
			w.s.slots--
		}
	}
	if len(group) > 0 {
		h.catchUp(group, cur, budget)
	}
	keep := h.unsynced[:0]
	for _, w := range h.unsynced {
		if w.cancelled || w.synced {
			continue
		}
		if w.next > cur {
			h.sync(w)
			continue
		}
		keep = append(keep, w)
	}
	clear(h.unsynced[len(keep):])
	h.unsynced = keep
}

// catchUpBatch is one watcher's share of a catch-up scan.
type catchUpBatch struct {
	evs  []*mvccpb.Event
	last int64 // the revision of the last event taken
	stop int64 // non-zero: the batch is full, the watcher resumes here
}

// catchUp sends each watcher of the group one batch of past events, whole
// revisions only, from a single scan of the history that visits at most
// budget events. Watchers are found per event by key, and ranges are
// tested once per distinct range, so the cost grows with the events
// scanned rather than with events times watchers.
func (h *Hub) catchUp(group []*watcher, cur int64, budget int) {
	from := group[0].next
	for _, w := range group {
		from = min(from, w.next)
	}
	batches := make([]catchUpBatch, len(group))
	byKey := map[string][]int{}
	byRange := map[string][]int{}
	var ranges []string // byRange's keys in first-seen order
	for i, w := range group {
		if w.single {
			byKey[string(w.key)] = append(byKey[string(w.key)], i)
			continue
		}
		rk := string(w.key) + "\x00" + string(w.end)
		if byRange[rk] == nil {
			ranges = append(ranges, rk)
		}
		byRange[rk] = append(byRange[rk], i)
	}
	take := func(i int, ev *mvccpb.Event, rev int64) {
		w, b := group[i], &batches[i]
		if w.next > rev || b.stop != 0 || !w.wants(ev) {
			return
		}
		if len(b.evs) >= CatchUpEventsMax && b.last != rev {
			b.stop = rev // full: stop at a revision boundary
			return
		}
		b.evs = append(b.evs, ev)
		b.last = rev
	}
	next := cur + 1 // where the scan leaves every watcher it covered
	at, visited := int64(-1), 0
	h.store.ScanEvents(mvcc.Revision(from), func(ev *mvccpb.Event) bool {
		rev := ev.Kv.ModRevision
		if rev > cur || planted.Enabled && h.Bug == planted.WatchCatchUpSkipLast && rev == cur {
			return false // planted variant: the batch's last revision is left out
		}
		if rev != at {
			if visited >= budget {
				next = rev
				return false
			}
			at = rev
		}
		visited++
		for _, i := range byKey[string(ev.Kv.Key)] {
			take(i, ev, rev)
		}
		for _, rk := range ranges {
			ids := byRange[rk]
			if !group[ids[0]].contains(ev.Kv.Key) {
				continue
			}
			for _, i := range ids {
				take(i, ev, rev)
			}
		}
		return true
	})
	for i, w := range group {
		b := &batches[i]
		if len(b.evs) > 0 {
			resp := &pb.WatchResponse{Header: h.header(cur), WatchId: w.id, Events: h.withPrev(w, b.evs)}
			if !h.fits(w.s, resp) {
				continue // it tries again once its stream drains
			}
			h.emit(w.s, resp, w.fragment)
			w.eventsSent = true
		}
		switch {
		case b.stop != 0:
			w.next = b.stop
		case w.next < next:
			w.next = next
		}
	}
}

// progressAll answers a stream's progress request: one response with
// watch id -1 at the current revision, if every watcher on the stream is
// synced (and past its start); otherwise nothing, as in etcd.
func (h *Hub) progressAll(s *stream) {
	ws := s.sorted()
	if len(ws) == 0 {
		return
	}
	cur := h.rev()
	for _, w := range ws {
		if !w.synced || cur < w.startRev {
			return
		}
	}
	if planted.Enabled && h.Bug == planted.WatchProgressAhead {
		cur++ // planted: the progress claims the next revision, not yet written
	}
	h.emit(s, &pb.WatchResponse{Header: h.header(cur), WatchId: invalidWatchID}, false)
}

// ProgressTick is the progress-notify interval: each synced watcher that
// asked for notifications and got no events since the last tick gets an
// empty response at the current revision.
func (h *Hub) ProgressTick() {
	cur := h.rev()
	for _, s := range h.order {
		for _, w := range s.sorted() {
			if !w.progressNotify {
				continue
			}
			if !w.eventsSent && w.synced && cur >= w.startRev {
				h.emit(s, &pb.WatchResponse{Header: h.header(cur), WatchId: w.id}, false)
			}
			w.eventsSent = false
		}
	}
}
