package server

import (
	"context"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/watch"
	"github.com/detcd/detcd/grpcsvc"
)

// watchOp is a watch stream's request to the loop.
type watchOp struct {
	stream watch.StreamID
	sink   *watchSink // set to open the stream
	req    *pb.WatchRequest
	credit int
	close  bool
}

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
	if err := s.sendWatchOp(ctx, watchOp{stream: id, sink: sink}); err != nil {
		return nil, err
	}
	return sink, nil
}

func (s *Server) sendWatchOp(ctx context.Context, op watchOp) error {
	select {
	case s.watchOps <- op:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopping:
		return core.ErrStopped
	}
}

func (w *watchSink) Request(ctx context.Context, r *pb.WatchRequest) error {
	return w.s.sendWatchOp(ctx, watchOp{stream: w.id, req: r})
}

func (w *watchSink) Credit(ctx context.Context, bytes int) error {
	return w.s.sendWatchOp(ctx, watchOp{stream: w.id, credit: bytes})
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
	select {
	case w.s.watchOps <- watchOp{stream: w.id, close: true}:
	case <-w.s.stopping:
	}
}

// push is called by the loop.
func (w *watchSink) push(o watch.Out) {
	w.mu.Lock()
	w.queue = append(w.queue, o)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *watchSink) end() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// handleWatchOp runs on the loop.
func (s *Server) handleWatchOp(sinks map[watch.StreamID]*watchSink, op watchOp) {
	switch {
	case op.sink != nil:
		sinks[op.stream] = op.sink
		s.node.WatchOpen(op.stream)
	case op.close:
		delete(sinks, op.stream)
		s.node.WatchClose(op.stream)
	case op.req != nil:
		s.node.WatchRequest(op.stream, op.req)
	case op.credit > 0:
		s.node.WatchCredit(op.stream, op.credit)
	}
}
