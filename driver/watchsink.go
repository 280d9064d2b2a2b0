package driver

import (
	"context"
	"sync"

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

// Next waits for the stream's next responses.
func (w *watchSink) Next(ctx context.Context) ([]watch.Out, error) {
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
