package watch

import (
	"errors"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core/mvcc"
)

// StreamID names a watch stream; the driver chooses it.
type StreamID uint64

// Errors a create request can be cancelled with, as etcd words them.
var (
	ErrEmptyRange  = errors.New("mvcc: watcher range is empty")
	ErrDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
	ErrCompacted   = mvcc.ErrCompacted
)

// Limits.
const (
	// StreamCreditBytesMax is a stream's credit: responses handed out and
	// not yet sent, in estimated bytes.
	StreamCreditBytesMax = 8 << 20
	// StreamResponsesMax bounds a stream's responses handed out and not
	// yet sent, however small: each takes at least 1/StreamResponsesMax of
	// the credit. A short queue is what makes an overloaded stream batch:
	// its watchers fall behind sooner and catch up with many events per
	// response, instead of queueing deep one event at a time (etcd keeps
	// 128 responses per stream for the same reason).
	StreamResponsesMax = 256
	// CatchUpEventsMax bounds the events an unsynced watcher's catch-up
	// takes per step.
	CatchUpEventsMax = 1000
	// WatchersPerStreamMax bounds one stream's watchers.
	WatchersPerStreamMax = 1 << 16
	// invalidWatchID is etcd's watch id for responses about no watcher.
	invalidWatchID = -1
)

// Out is a response for a stream.
type Out struct {
	Stream StreamID
	Resp   *pb.WatchResponse
	// Fragment: the watcher asked for large responses to be split.
	Fragment bool
	// Bytes is the credit the response took; the driver gives it back with
	// Credit once the response is sent.
	Bytes int
}

// Hub holds every watcher of a member.
type Hub struct {
	// Bug names a planted bug (core/internal/planted); empty but in
	// detcdbugs builds.
	Bug string

	store  *mvcc.Store
	header func(rev int64) *pb.ResponseHeader
	// streams by id, and in creation order for deterministic walks.
	streams map[StreamID]*stream
	order   []*stream
	// synced watchers: single keys by key, ranges in a list.
	byKey  map[string][]*watcher
	ranges []*watcher
	// unsynced watchers in the order they fell behind.
	unsynced []*watcher
	seq      uint64
	out      []Out
	// creditMax is each new stream's credit, and responsesMax the most
	// responses it holds (tests make both small).
	creditMax, responsesMax int
}

type stream struct {
	id     StreamID
	credit int
	max    int
	slots  int // during Step: the catch-up responses it can still take
	// minCharge is the least credit a response takes: max/responsesMax.
	minCharge int
	watchers  map[int64]*watcher
	nextID    int64
	closed    bool
}

type watcher struct {
	seq      uint64
	s        *stream
	id       int64
	key, end []byte
	single   bool
	startRev int64
	// next is the first revision the watcher has not seen.
	next           int64
	noPut, noDel   bool
	prevKV         bool
	progressNotify bool
	fragment       bool
	synced         bool
	slot           int // while synced, the watcher's index in its synced list
	// eventsSent is set when events went out since the last progress tick.
	eventsSent bool
	cancelled  bool
}

// New returns a hub over a store. header fills response headers.
func New(store *mvcc.Store, header func(rev int64) *pb.ResponseHeader) *Hub {
	return &Hub{store: store, header: header, streams: map[StreamID]*stream{}, byKey: map[string][]*watcher{}, creditMax: StreamCreditBytesMax, responsesMax: StreamResponsesMax}
}

// SetStore points the hub at a new store, after a snapshot replaced the
// member's state. Synced watchers had seen every revision up to seen; they
// catch up from there out of the new store's history.
func (h *Hub) SetStore(store *mvcc.Store, seen int64) {
	h.store = store
	for _, s := range h.order {
		for _, w := range s.sorted() {
			if w.synced {
				w.next = max(w.next, seen+1)
				h.unsync(w)
			}
		}
	}
}

// Take returns the responses made since the last call.
func (h *Hub) Take() []Out {
	out := h.out
	h.out = nil
	return out
}

// Open starts a stream.
func (h *Hub) Open(id StreamID) {
	if _, ok := h.streams[id]; ok {
		return
	}
	s := &stream{id: id, credit: h.creditMax, max: h.creditMax, minCharge: max(h.creditMax/h.responsesMax, 1), watchers: map[int64]*watcher{}}
	h.streams[id] = s
	h.order = append(h.order, s)
}

// Close ends a stream and its watchers.
func (h *Hub) Close(id StreamID) {
	s, ok := h.streams[id]
	if !ok {
		return
	}
	for _, w := range s.sorted() {
		h.remove(w)
	}
	s.closed = true
	delete(h.streams, id)
	for i, o := range h.order {
		if o == s {
			h.order = append(h.order[:i], h.order[i+1:]...)
			break
		}
	}
}

// Credit gives a stream back credit for responses it sent.
func (h *Hub) Credit(id StreamID, bytes int) {
	if s, ok := h.streams[id]; ok {
		s.credit = min(s.credit+bytes, s.max)
	}
}

// Streams is the number of open streams; Watchers the number of watchers.
func (h *Hub) Streams() int { return len(h.streams) }

func (s *stream) sorted() []*watcher {
	ws := make([]*watcher, 0, len(s.watchers))
	for _, w := range s.watchers { //core:maporder-ok: sorted below
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].seq < ws[j].seq })
	return ws
}

// Request handles a request on a stream: create, cancel or progress.
func (h *Hub) Request(id StreamID, r *pb.WatchRequest) {
	s, ok := h.streams[id]
	if !ok {
		return
	}
	switch {
	case r.GetCreateRequest() != nil:
		h.create(s, r.GetCreateRequest())
	case r.GetCancelRequest() != nil:
		h.cancel(s, r.GetCancelRequest().WatchId)
	case r.GetProgressRequest() != nil:
		h.progressAll(s)
	}
}

func (h *Hub) rev() int64 { return int64(h.store.Rev()) }

// emit hands a response to a stream, taking credit.
func (h *Hub) emit(s *stream, resp *pb.WatchResponse, fragment bool) {
	n := s.charge(resp)
	s.credit -= n
	h.out = append(h.out, Out{Stream: s.id, Resp: resp, Fragment: fragment, Bytes: n})
}

// size estimates a response's bytes for credit, without encoding it.
func size(r *pb.WatchResponse) int {
	n := 64
	for _, ev := range r.Events {
		n += 32 + len(ev.Kv.Key) + len(ev.Kv.Value)
		if ev.PrevKv != nil {
			n += 32 + len(ev.PrevKv.Key) + len(ev.PrevKv.Value)
		}
	}
	return n
}

func (h *Hub) create(s *stream, cr *pb.WatchCreateRequest) {
	key := cr.Key
	if len(key) == 0 {
		key = []byte{0}
	}
	end := cr.RangeEnd
	switch {
	case len(end) == 0:
		end = nil
	case len(end) == 1 && end[0] == 0:
		end = []byte{}
	}
	fail := func(err error) {
		h.emit(s, &pb.WatchResponse{Header: h.header(h.rev()), WatchId: invalidWatchID, Created: true, Canceled: true, CancelReason: err.Error()}, false)
	}
	switch {
	case cr.StartRevision < 0:
		fail(ErrCompacted)
		return
	case len(end) != 0 && string(key) >= string(end):
		fail(ErrEmptyRange)
		return
	case len(s.watchers) >= WatchersPerStreamMax:
		fail(errors.New("too many watchers on this stream"))
		return
	}
	id := cr.WatchId
	if id == 0 {
		for s.watchers[s.nextID] != nil {
			s.nextID++
		}
		id = s.nextID
		s.nextID++
	} else if s.watchers[id] != nil {
		fail(ErrDuplicateID)
		return
	}
	h.seq++
	w := &watcher{
		seq: h.seq, s: s, id: id, key: key, end: end, single: end == nil,
		startRev: cr.StartRevision, prevKV: cr.PrevKv, progressNotify: cr.ProgressNotify, fragment: cr.Fragment,
	}
	for _, f := range cr.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDel = true
		}
	}
	s.watchers[id] = w
	cur := h.rev()
	h.emit(s, &pb.WatchResponse{Header: h.header(cur), WatchId: id, Created: true}, false)
	if cr.StartRevision == 0 || cr.StartRevision > cur {
		w.next = max(cur+1, cr.StartRevision)
		h.sync(w)
		return
	}
	w.next = cr.StartRevision
	h.unsynced = append(h.unsynced, w)
}

func (h *Hub) cancel(s *stream, id int64) {
	w, ok := s.watchers[id]
	if !ok {
		return // etcd answers nothing for an unknown watcher
	}
	h.remove(w)
	h.emit(s, &pb.WatchResponse{Header: h.header(h.rev()), WatchId: id, Canceled: true}, false)
}

// remove takes a watcher out of every set.
func (h *Hub) remove(w *watcher) {
	w.cancelled = true
	delete(w.s.watchers, w.id)
	if w.synced {
		h.unlinkSynced(w)
	}
	// Unsynced watchers are dropped lazily by Step.
}

func (h *Hub) sync(w *watcher) {
	w.synced = true
	if w.single {
		k := string(w.key)
		w.slot = len(h.byKey[k])
		h.byKey[k] = append(h.byKey[k], w)
		return
	}
	w.slot = len(h.ranges)
	h.ranges = append(h.ranges, w)
}

func (h *Hub) unlinkSynced(w *watcher) {
	w.synced = false
	if w.single {
		k := string(w.key)
		if ws := removeWatcher(h.byKey[k], w); len(ws) > 0 {
			h.byKey[k] = ws
		} else {
			delete(h.byKey, k)
		}
		return
	}
	h.ranges = removeWatcher(h.ranges, w)
}

// removeWatcher takes w out of the synced list ws in constant time, by
// moving the last watcher into its slot: Notify orders its responses by
// watcher, not by list position, so the order of the list does not matter.
func removeWatcher(ws []*watcher, w *watcher) []*watcher {
	last := len(ws) - 1
	ws[w.slot] = ws[last]
	ws[w.slot].slot = w.slot
	ws[last] = nil
	return ws[:last]
}

// unsync moves a synced watcher behind: it will catch up from history.
func (h *Hub) unsync(w *watcher) {
	h.unlinkSynced(w)
	h.unsynced = append(h.unsynced, w)
}

func (w *watcher) contains(key []byte) bool {
	if w.single {
		return string(key) == string(w.key)
	}
	if string(key) < string(w.key) {
		return false
	}
	return len(w.end) == 0 || string(key) < string(w.end)
}

func (w *watcher) wants(ev *mvccpb.Event) bool {
	if ev.Type == mvccpb.Event_PUT {
		return !w.noPut
	}
	return !w.noDel
}
