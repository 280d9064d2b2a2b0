package watch

import (
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

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
	return s.credit >= size(resp) || s.credit == s.max
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
// at least half its credit, so a slow stream is not fed one event at a
// time.
func (s *stream) ready() bool { return s.credit >= s.max/2 }

// Step lets unsynced watchers catch up from history, visiting at most
// budget stored events in all.
func (h *Hub) Step(budget int) {
	if len(h.unsynced) == 0 {
		return
	}
	cur := h.rev()
	compact := int64(h.store.CompactRev())
	keep := h.unsynced[:0]
	for _, w := range h.unsynced {
		switch {
		case w.cancelled:
			continue
		case budget <= 0 || !w.s.ready():
			keep = append(keep, w)
			continue
		case w.next > cur:
			// It starts in the future (a snapshot put the store behind it):
			// nothing to catch up.
			h.sync(w)
			continue
		case w.next < compact:
			// The history it needs is gone: cancel it with the compaction
			// revision, as etcd does (with a zero header revision).
			h.remove(w)
			h.emit(w.s, &pb.WatchResponse{Header: h.header(0), WatchId: w.id, CompactRevision: compact, Canceled: true}, false)
			continue
		}
		budget -= h.catchUp(w, cur)
		if w.next > cur {
			h.sync(w)
			continue
		}
		keep = append(keep, w)
	}
	clear(h.unsynced[len(keep):])
	h.unsynced = keep
}

// catchUp sends one batch of past events to w, whole revisions only, and
// returns how many stored events it visited.
func (h *Hub) catchUp(w *watcher, cur int64) int {
	var evs []*mvccpb.Event
	visited := 0
	next := max(w.next, cur+1) // where the watcher stands after this batch
	at := int64(-1)            // the revision being collected
	h.store.ScanEvents(mvcc.Revision(w.next), func(ev *mvccpb.Event) bool {
		rev := ev.Kv.ModRevision
		if rev > cur {
			return false
		}
		if rev != at {
			if len(evs) >= CatchUpEventsMax || visited >= catchUpVisitsMax {
				next = rev // stop at a revision boundary
				return false
			}
			at = rev
		}
		visited++
		if w.contains(ev.Kv.Key) && w.wants(ev) {
			evs = append(evs, ev)
		}
		return true
	})
	if len(evs) > 0 {
		resp := &pb.WatchResponse{Header: h.header(cur), WatchId: w.id, Events: h.withPrev(w, evs)}
		if !h.fits(w.s, resp) {
			return max(visited, 1)
		}
		h.emit(w.s, resp, w.fragment)
		w.eventsSent = true
	}
	w.next = next
	return max(visited, 1)
}

// catchUpVisitsMax bounds the stored events one catch-up batch visits, so
// a watcher on a quiet key does not scan the whole history in one step.
const catchUpVisitsMax = 4 * CatchUpEventsMax

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
