package grpcsvc

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core/watch"
)

// WatchStream is a member's side of one gRPC watch stream.
type WatchStream interface {
	Request(ctx context.Context, r *pb.WatchRequest) error
	// Next waits for responses; an error ends the stream.
	Next(ctx context.Context) ([]watch.Out, error)
	// Credit returns the credit of responses sent.
	Credit(ctx context.Context, bytes int) error
	Close()
}

// WatchService is etcd's Watch service. Watch serves a gRPC stream; the
// simulator drives a WatchSession, the same steps, from its tasks.
type WatchService struct {
	pb.UnimplementedWatchServer
	b Backend
}

// WatchSession is one watch stream's server side, step by step: Receive
// takes what the client sends, Step waits for the member's responses and
// sends them. The gRPC handler runs Receive on a goroutine of its own and
// Step in a loop; the simulator calls both from its tasks.
type WatchSession struct {
	s     *WatchService
	ws    WatchStream
	send  func(*pb.WatchResponse) error
	limit int
	// sendMu: Receive answers refused creates itself, while Step sends.
	sendMu sync.Mutex
	// recvErr is the error receiving ended with: it ends the stream.
	recvErr atomic.Pointer[error]
}

// Open starts a session whose responses go out through send.
func (s *WatchService) Open(ctx context.Context, send func(*pb.WatchResponse) error) (*WatchSession, error) {
	ws, err := s.b.OpenWatch(ctx)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &WatchSession{s: s, ws: ws, send: send, limit: s.b.MaxRequestBytes() + grpcOverheadBytes}, nil
}

// Receive takes what the stream's Recv gave: a request (create, cancel,
// progress) goes to the member, a create the client may not read is
// refused here. more says whether to keep receiving: not once the client
// is done sending (io.EOF; as etcd's, it still gets its events: the JSON
// gateway half-closes at once), nor after an error, err, which ends the
// stream: the caller then cancels the context Step waits with, and Step
// returns err.
func (w *WatchSession) Receive(ctx context.Context, req *pb.WatchRequest, recvErr error) (more bool, err error) {
	if errors.Is(recvErr, io.EOF) {
		return false, nil
	}
	err = recvErr
	if err == nil {
		err = w.handle(ctx, req)
	}
	if err != nil {
		w.recvErr.Store(&err)
		return false, err
	}
	return true, nil
}

// handle takes one request from the client.
func (w *WatchSession) handle(ctx context.Context, req *pb.WatchRequest) error {
	if denied := w.s.refuseCreate(ctx, req.GetCreateRequest()); denied != nil {
		w.sendMu.Lock()
		defer w.sendMu.Unlock()
		return w.send(denied)
	}
	return w.ws.Request(ctx, req)
}

// Step waits for the member's next responses and sends them; an error
// ends the stream, with what the handler returns: the receive side's
// error first, else etcd's "watch canceled" for a canceled context, else
// the member's.
func (w *WatchSession) Step(ctx context.Context) error {
	outs, err := w.ws.Next(ctx)
	if err == nil {
		return w.deliver(ctx, outs)
	}
	if rerr := w.recvErr.Load(); rerr != nil {
		return *rerr
	}
	if errors.Is(err, context.Canceled) {
		return rpctypes.ErrGRPCWatchCanceled
	}
	return toGRPC(err)
}

// deliver sends responses, a watcher's waiting ones merged, fragmented
// when a watcher asked for it and a response is over the request size
// limit, and gives their credit back.
func (w *WatchSession) deliver(ctx context.Context, outs []watch.Out) error {
	outs = coalesce(outs, w.limit)
	credit := 0
	w.sendMu.Lock()
	var err error
	for _, o := range outs {
		if err = sendWatch(w.send, o, w.limit); err != nil {
			break
		}
		credit += o.Bytes
	}
	w.sendMu.Unlock()
	if err != nil {
		return err
	}
	return toGRPC(w.ws.Credit(ctx, credit))
}

// Close ends the session.
func (w *WatchSession) Close() { w.ws.Close() }

// Watch serves one bidirectional watch stream: plumbing around a
// WatchSession, whose steps decide everything. The receive side runs
// apart (Backend.Go: a goroutine in the server, a task in the simulator,
// which runs this handler on its in-process streams); a receive that
// fails cancels the context the send side waits with.
func (s *WatchService) Watch(stream pb.Watch_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	sess, err := s.Open(ctx, stream.Send)
	if err != nil {
		return err
	}
	defer sess.Close()
	s.b.Go(func() {
		for {
			req, err := stream.Recv()
			more, err := sess.Receive(ctx, req, err)
			if err != nil {
				cancel()
			}
			if !more {
				return
			}
		}
	})
	for {
		if err := sess.Step(ctx); err != nil {
			return err
		}
	}
}

// refuseCreate answers, with auth on, a watch the client may not read as
// etcd does: created and at once canceled, with watch id -1 and the
// reason; nil when the watch may go ahead. As etcd's, it checks the key
// as the watch will use it (an empty key is "\x00") and leaves a negative
// start revision to the member, which refuses it whoever asks.
func (s *WatchService) refuseCreate(ctx context.Context, cr *pb.WatchCreateRequest) *pb.WatchResponse {
	if cr == nil || cr.StartRevision < 0 {
		return nil
	}
	key := cr.Key
	if len(key) == 0 {
		key = []byte{0}
	}
	err := checkRead(ctx, s.b, key, cr.RangeEnd)
	if err == nil {
		return nil
	}
	_, hdr, _ := s.b.SerializableView(ctx)
	return &pb.WatchResponse{Header: hdr, WatchId: -1, Created: true, Canceled: true, CancelReason: watchDeniedReason(err).Error()}
}

// watchDeniedReason is the error etcd names as a refused watch's reason:
// the credential errors as they are, anything else as permission denied.
func watchDeniedReason(err error) error {
	for _, e := range []error{rpctypes.ErrGRPCInvalidAuthToken, rpctypes.ErrGRPCAuthOldRevision, rpctypes.ErrGRPCUserEmpty} {
		if errors.Is(err, e) {
			return e
		}
	}
	return rpctypes.ErrGRPCPermissionDenied
}

// etcdCancelReason is the reason etcd gives where core's words differ:
// etcd refuses a negative start revision with its "etcdserver: " error.
func etcdCancelReason(reason string) string {
	if reason == watch.ErrCompacted.Error() {
		return rpctypes.ErrCompacted.Error()
	}
	return reason
}

// sendWatch sends a response, split into fragments as etcd does when the
// watcher asked for fragments and the response is too large.
func sendWatch(send func(*pb.WatchResponse) error, o watch.Out, limit int) error {
	wr := o.Resp
	if reason := etcdCancelReason(wr.CancelReason); reason != wr.CancelReason {
		// A copy: the member's responses may be shared.
		wr = proto.CloneOf(wr)
		wr.CancelReason = reason
	}
	if !o.Fragment || len(wr.Events) < 2 || proto.Size(wr) < limit {
		return send(wr)
	}
	idx := 0
	for {
		cur := &pb.WatchResponse{
			Header: wr.Header, WatchId: wr.WatchId, Created: wr.Created, Canceled: wr.Canceled,
			CompactRevision: wr.CompactRevision, CancelReason: wr.CancelReason, Fragment: true,
			Events: make([]*mvccpb.Event, 0),
		}
		for _, ev := range wr.Events[idx:] {
			cur.Events = append(cur.Events, ev)
			if len(cur.Events) > 1 && proto.Size(cur) >= limit {
				cur.Events = cur.Events[:len(cur.Events)-1]
				break
			}
			idx++
		}
		if idx == len(wr.Events) {
			cur.Fragment = false
		}
		if err := send(cur); err != nil {
			return err
		}
		if !cur.Fragment {
			return nil
		}
	}
}
