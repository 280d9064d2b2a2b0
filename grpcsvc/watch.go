package grpcsvc

import (
	"context"
	"errors"
	"io"
	"sync"

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

type watchServer struct {
	pb.UnimplementedWatchServer
	b Backend
}

// Watch serves one bidirectional watch stream: requests go to the member
// as they arrive; responses come back in order, fragmented when a watcher
// asked for it and a response is over the request size limit.
func (s *watchServer) Watch(stream pb.Watch_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ws, err := s.b.OpenWatch(ctx)
	if err != nil {
		return toGRPC(err)
	}
	defer ws.Close()
	recvErr := make(chan error, 1)
	var sendMu sync.Mutex // the receiver answers refused creates itself
	go func() {
		for {
			req, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				// As etcd's: a client that is done sending still gets
				// its events (the JSON gateway half-closes at once).
				return
			}
			if err != nil {
				recvErr <- err
				cancel()
				return
			}
			if denied := s.refuseCreate(ctx, req.GetCreateRequest()); denied != nil {
				sendMu.Lock()
				err := stream.Send(denied)
				sendMu.Unlock()
				if err != nil {
					recvErr <- err
					cancel()
					return
				}
				continue
			}
			if err := ws.Request(ctx, req); err != nil {
				recvErr <- err
				cancel()
				return
			}
		}
	}()
	limit := s.b.MaxRequestBytes() + grpcOverheadBytes
	for {
		outs, err := ws.Next(ctx)
		if err != nil {
			select {
			case rerr := <-recvErr:
				if rerr != nil {
					return rerr
				}
				return nil
			default:
			}
			if errors.Is(err, context.Canceled) {
				return rpctypes.ErrGRPCWatchCanceled
			}
			return toGRPC(err)
		}
		credit := 0
		sendMu.Lock()
		for _, o := range outs {
			if err = sendWatch(stream, o, limit); err != nil {
				break
			}
			credit += o.Bytes
		}
		sendMu.Unlock()
		if err != nil {
			return err
		}
		if err := ws.Credit(ctx, credit); err != nil {
			return toGRPC(err)
		}
	}
}

// refuseCreate answers, with auth on, a watch the client may not read as
// etcd does: created and at once canceled, with watch id -1 and the
// reason; nil when the watch may go ahead. As etcd's, it checks the key
// as the watch will use it (an empty key is "\x00") and leaves a negative
// start revision to the member, which refuses it whoever asks.
func (s *watchServer) refuseCreate(ctx context.Context, cr *pb.WatchCreateRequest) *pb.WatchResponse {
	if cr == nil || cr.StartRevision < 0 {
		return nil
	}
	key := cr.Key
	if len(key) == 0 {
		key = []byte{0}
	}
	_, err := permitRead(ctx, s.b, key, cr.RangeEnd)
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
func sendWatch(stream pb.Watch_WatchServer, o watch.Out, limit int) error {
	wr := o.Resp
	if reason := etcdCancelReason(wr.CancelReason); reason != wr.CancelReason {
		// A copy: the member's responses may be shared.
		wr = proto.CloneOf(wr)
		wr.CancelReason = reason
	}
	if !o.Fragment || len(wr.Events) < 2 || proto.Size(wr) < limit {
		return stream.Send(wr)
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
		if err := stream.Send(cur); err != nil {
			return err
		}
		if !cur.Fragment {
			return nil
		}
	}
}
