package driver

import (
	"context"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/grpcsvc"
)

// watchSink carries a stream's responses from the loop to its handler. It
// never blocks the loop: what it holds is bounded by the stream's credit
// in the node, not by a channel.
type watchSink struct {
	f     *Frontend
	id    watch.StreamID
	mu    sync.Mutex
	queue []watch.Out
	done  bool
	// wake is what the handler waits on while the queue is empty.
	wake Signal
	// behind and lastAt are what Next saw of the batch it returned last,
	// and when (Next's own: the stream's one sender calls it).
	behind bool
	lastAt time.Time
}

// OpenWatch implements grpcsvc.Backend.
func (f *Frontend) OpenWatch(ctx context.Context) (grpcsvc.WatchStream, error) {
	id := watch.StreamID(f.nextStream.Add(1))
	sink := &watchSink{f: f, id: id}
	f.mu.Lock()
	draining := f.draining
	if !draining {
		f.sinks[id] = sink
	}
	f.mu.Unlock()
	if draining {
		return nil, core.ErrStopped
	}
	if err := f.rt.Post(ctx, func() { f.d.OpenWatch(id, sink) }); err != nil {
		f.forget(id)
		return nil, err
	}
	return sink, nil
}

func (f *Frontend) forget(id watch.StreamID) {
	f.mu.Lock()
	delete(f.sinks, id)
	f.mu.Unlock()
}

// Drain ends every watch stream, so that their clients move to another
// member, and refuses new ones: the member is stopping, and Stop does not
// wait for streams that never end on their own.
func (f *Frontend) Drain() {
	f.mu.Lock()
	f.draining = true
	sinks := make([]*watchSink, 0, len(f.sinks))
	for _, s := range f.sinks { //detcd:maporder-ok: each stream ends on its own
		sinks = append(sinks, s)
	}
	f.mu.Unlock()
	for _, s := range sinks {
		s.End()
	}
}

func (w *watchSink) Request(ctx context.Context, r *pb.WatchRequest) error {
	return w.f.rt.Post(ctx, func() { w.f.d.WatchRequest(w.id, r) })
}

func (w *watchSink) Credit(ctx context.Context, bytes int) error {
	return w.f.rt.Post(ctx, func() { w.f.d.WatchCredit(w.id, bytes) })
}

// Next waits for the stream's next responses. A stream that fell behind
// its watchers' events (its last batch held at least WatchBusyOuts
// responses, of more than one revision) takes the next no sooner than
// WatchBatchGap after the last: what comes meanwhile goes out merged,
// several revisions to a watcher's response (grpcsvc's coalesce; the
// watchers that ran out of the stream's credit meanwhile catch up with
// many events each), fewer and larger messages for the same events. A
// client's cost is mostly per response, so that is what lets one stream
// with a thousand watchers keep up with a fast writer. A stream that
// keeps up takes each revision as soon as it comes.
func (w *watchSink) Next(ctx context.Context) ([]watch.Out, error) {
	c, gap := w.f.cfg.WatchClock, w.f.cfg.WatchBatchGap
	if c == nil || gap <= 0 {
		return w.next(ctx)
	}
	if w.behind {
		if rest := gap - c.Now().Sub(w.lastAt); rest > 0 {
			if err := c.Sleep(ctx, rest); err != nil {
				return nil, err
			}
		}
	}
	out, err := w.next(ctx)
	// Two revisions in a batch taken at once make a stream behind; one
	// that waited stays so while its batches span more than the gap and
	// the sending around it explain (three revisions or more), and a
	// steady rate of about one revision per gap does not keep it there.
	need := int64(2)
	if w.behind {
		need = 3
	}
	w.behind, w.lastAt = len(out) >= max(w.f.cfg.WatchBusyOuts, 1) && revisionSpan(out) >= need, c.Now()
	return out, err
}

// revisionSpan is how many revisions the events of outs span, from the
// oldest to the newest (0 without events).
func revisionSpan(outs []watch.Out) int64 {
	var lo, hi int64
	for _, o := range outs {
		for _, ev := range o.Resp.Events {
			r := ev.Kv.ModRevision
			if lo == 0 || r < lo {
				lo = r
			}
			hi = max(hi, r)
		}
	}
	if hi == 0 {
		return 0
	}
	return hi - lo + 1
}

// next waits for the stream's next responses and takes them all.
func (w *watchSink) next(ctx context.Context) ([]watch.Out, error) {
	for {
		w.mu.Lock()
		out, done := w.queue, w.done
		w.queue = nil
		var wake Signal
		if len(out) == 0 && !done {
			wake = w.f.rt.NewSignal()
			w.wake = wake
		}
		w.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		if done {
			return nil, core.ErrStopped
		}
		if err := wake.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

func (w *watchSink) Close() {
	w.f.forget(w.id)
	_ = w.f.rt.Post(context.Background(), func() { w.f.d.CloseWatch(w.id) })
}

// Push implements Sink; it runs on the loop.
func (w *watchSink) Push(o watch.Out) {
	w.mu.Lock()
	w.queue = append(w.queue, o)
	wake := w.wake
	w.wake = nil
	w.mu.Unlock()
	if wake != nil {
		wake.Fire()
	}
}

// End implements Sink.
func (w *watchSink) End() {
	w.mu.Lock()
	w.done = true
	wake := w.wake
	w.wake = nil
	w.mu.Unlock()
	if wake != nil {
		wake.Fire()
	}
}
