package server

import (
	"context"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/grpcsvc"
)

// watchSink carries a stream's responses from the loop to its gRPC
// goroutine. It never blocks the loop: its size is bounded by the stream's
// credit in the core, not by a channel.
type watchSink struct {
	s      *Server
	id     watch.StreamID
	mu     sync.Mutex
	queue  []watch.Out
	notify chan struct{}
	done   bool
}

// OpenWatch implements grpcsvc.Backend.
func (s *Server) OpenWatch(ctx context.Context) (grpcsvc.WatchStream, error) {
	id := watch.StreamID(s.nextStream.Add(1))
	sink := &watchSink{s: s, id: id, notify: make(chan struct{}, 1)}
	if err := s.loop.Post(ctx, func() { s.drv.OpenWatch(id, sink) }); err != nil {
		return nil, err
	}
	return sink, nil
}

func (w *watchSink) Request(ctx context.Context, r *pb.WatchRequest) error {
	return w.s.loop.Post(ctx, func() { w.s.drv.WatchRequest(w.id, r) })
}

func (w *watchSink) Credit(ctx context.Context, bytes int) error {
	return w.s.loop.Post(ctx, func() { w.s.drv.WatchCredit(w.id, bytes) })
}

// Next waits for the stream's next responses.
func (w *watchSink) Next(ctx context.Context) ([]watch.Out, error) {
	for {
		w.mu.Lock()
		out, done := w.queue, w.done
		w.queue = nil
		w.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		if done {
			return nil, core.ErrStopped
		}
		select {
		case <-w.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.s.draining:
			// The member is shutting down: end the stream so that the
			// client moves to another member, and Stop does not wait for
			// streams that never end on their own.
			return nil, core.ErrStopped
		}
	}
}

func (w *watchSink) Close() {
	_ = w.s.loop.Post(context.Background(), func() { w.s.drv.CloseWatch(w.id) })
}

// Push implements driver.Sink; it is called by the loop.
func (w *watchSink) Push(o watch.Out) {
	w.mu.Lock()
	w.queue = append(w.queue, o)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// End implements driver.Sink.
func (w *watchSink) End() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}
