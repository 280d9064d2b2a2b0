package grpcsvc

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// inProcessClient is a clientv3 client whose KV, Lease and Watch calls go
// straight to this member's services, as etcd's v3client does for its Lock
// and Election services: each call runs with the caller's context, so the
// caller's token, TLS certificate and deadline apply to what Lock and
// Election do for it, and no interceptor runs twice.
func inProcessClient(kv pb.KVServer, lease pb.LeaseServer, w pb.WatchServer) *clientv3.Client {
	c := clientv3.NewCtxClient(context.Background())
	c.KV = clientv3.NewKVFromKVClient(kvDirect{kv}, c)
	// A second is what NewLeaseFromLeaseClient takes for "clientv3's
	// default first keep-alive timeout", as etcd's v3client asks.
	c.Lease = clientv3.NewLeaseFromLeaseClient(leaseDirect{lease}, c, time.Second)
	c.Watcher = clientv3.NewWatchFromWatchClient(watchDirect{w}, c)
	return c
}

// errNoRangeStream: Lock and Election never stream ranges.
var errNoRangeStream = status.Error(codes.Unimplemented, "RangeStream is not served in process")

type kvDirect struct{ s pb.KVServer }

func (c kvDirect) Range(ctx context.Context, r *pb.RangeRequest, _ ...grpc.CallOption) (*pb.RangeResponse, error) {
	return c.s.Range(ctx, r)
}

func (c kvDirect) RangeStream(context.Context, *pb.RangeRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[pb.RangeStreamResponse], error) {
	return nil, errNoRangeStream
}

func (c kvDirect) Put(ctx context.Context, r *pb.PutRequest, _ ...grpc.CallOption) (*pb.PutResponse, error) {
	return c.s.Put(ctx, r)
}

func (c kvDirect) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest, _ ...grpc.CallOption) (*pb.DeleteRangeResponse, error) {
	return c.s.DeleteRange(ctx, r)
}

func (c kvDirect) Txn(ctx context.Context, r *pb.TxnRequest, _ ...grpc.CallOption) (*pb.TxnResponse, error) {
	return c.s.Txn(ctx, r)
}

func (c kvDirect) Compact(ctx context.Context, r *pb.CompactionRequest, _ ...grpc.CallOption) (*pb.CompactionResponse, error) {
	return c.s.Compact(ctx, r)
}

type leaseDirect struct{ s pb.LeaseServer }

func (c leaseDirect) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest, _ ...grpc.CallOption) (*pb.LeaseGrantResponse, error) {
	return c.s.LeaseGrant(ctx, r)
}

func (c leaseDirect) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest, _ ...grpc.CallOption) (*pb.LeaseRevokeResponse, error) {
	return c.s.LeaseRevoke(ctx, r)
}

func (c leaseDirect) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest, _ ...grpc.CallOption) (*pb.LeaseTimeToLiveResponse, error) {
	return c.s.LeaseTimeToLive(ctx, r)
}

func (c leaseDirect) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest, _ ...grpc.CallOption) (*pb.LeaseLeasesResponse, error) {
	return c.s.LeaseLeases(ctx, r)
}

func (c leaseDirect) LeaseKeepAlive(ctx context.Context, _ ...grpc.CallOption) (grpc.BidiStreamingClient[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse], error) {
	return startPipe(ctx, c.s.LeaseKeepAlive), nil
}

type watchDirect struct{ s pb.WatchServer }

func (c watchDirect) Watch(ctx context.Context, _ ...grpc.CallOption) (grpc.BidiStreamingClient[pb.WatchRequest, pb.WatchResponse], error) {
	return startPipe(ctx, c.s.Watch), nil
}

// pipe is one in-process bidirectional stream: the handler runs on a
// goroutine of its own with a server end, the caller holds the client
// end. Messages are cloned on the way, as a transport's encoding would
// copy them, so neither side sees the other reuse a message.
type pipe[Req, Resp any] struct {
	ctx    context.Context
	cancel context.CancelFunc
	reqs   chan *Req
	// sendClosed is closed by CloseSend: the handler's Recv gets io.EOF.
	sendClosed chan struct{}
	closeOnce  sync.Once
	resps      chan *Resp
	// done is closed when the handler has returned err.
	done chan struct{}
	err  error
}

// startPipe runs handler on a new stream whose context is ctx's.
func startPipe[Req, Resp any](ctx context.Context, handler func(grpc.BidiStreamingServer[Req, Resp]) error) grpc.BidiStreamingClient[Req, Resp] {
	ctx, cancel := context.WithCancel(ctx)
	p := &pipe[Req, Resp]{ctx: ctx, cancel: cancel, reqs: make(chan *Req), sendClosed: make(chan struct{}),
		resps: make(chan *Resp, 16), done: make(chan struct{})}
	go func() {
		p.err = handler(pipeServer[Req, Resp]{p})
		close(p.done)
		cancel()
	}()
	return pipeClient[Req, Resp]{p}
}

// errPipeEnded is what sending on a stream that has ended gets.
var errPipeEnded = status.Error(codes.Canceled, "in-process stream ended")

func clone[T any](m *T) *T { return any(proto.Clone(any(m).(proto.Message))).(*T) }

// pipeClient is the caller's end.
type pipeClient[Req, Resp any] struct{ p *pipe[Req, Resp] }

func (c pipeClient[Req, Resp]) Send(m *Req) error {
	select {
	case c.p.reqs <- clone(m):
		return nil
	case <-c.p.done:
		return io.EOF // as gRPC: the error comes from Recv
	case <-c.p.ctx.Done():
		return errPipeEnded
	}
}

func (c pipeClient[Req, Resp]) Recv() (*Resp, error) {
	select {
	case m := <-c.p.resps:
		return m, nil
	case <-c.p.done:
	}
	// The handler is done: what it sent first, then its error.
	select {
	case m := <-c.p.resps:
		return m, nil
	default:
	}
	if c.p.err == nil {
		return nil, io.EOF
	}
	return nil, c.p.err
}

func (c pipeClient[Req, Resp]) CloseSend() error {
	c.p.closeOnce.Do(func() { close(c.p.sendClosed) })
	return nil
}

func (c pipeClient[Req, Resp]) Header() (metadata.MD, error) { return nil, nil }
func (c pipeClient[Req, Resp]) Trailer() metadata.MD         { return nil }
func (c pipeClient[Req, Resp]) Context() context.Context     { return c.p.ctx }
func (c pipeClient[Req, Resp]) SendMsg(m any) error          { return c.Send(m.(*Req)) }
func (c pipeClient[Req, Resp]) RecvMsg(any) error            { return errNoRawMessages }

// errNoRawMessages: the typed Send and Recv are the only ways in.
var errNoRawMessages = errors.New("in-process stream: only typed messages")

// pipeServer is the handler's end.
type pipeServer[Req, Resp any] struct{ p *pipe[Req, Resp] }

func (s pipeServer[Req, Resp]) Recv() (*Req, error) {
	select {
	case m := <-s.p.reqs:
		return m, nil
	case <-s.p.sendClosed:
		return nil, io.EOF
	case <-s.p.ctx.Done():
		return nil, status.FromContextError(s.p.ctx.Err()).Err()
	}
}

func (s pipeServer[Req, Resp]) Send(m *Resp) error {
	select {
	case s.p.resps <- clone(m):
		return nil
	case <-s.p.ctx.Done():
		return status.FromContextError(s.p.ctx.Err()).Err()
	}
}

func (s pipeServer[Req, Resp]) SetHeader(metadata.MD) error  { return nil }
func (s pipeServer[Req, Resp]) SendHeader(metadata.MD) error { return nil }
func (s pipeServer[Req, Resp]) SetTrailer(metadata.MD)       {}
func (s pipeServer[Req, Resp]) Context() context.Context     { return s.p.ctx }
func (s pipeServer[Req, Resp]) SendMsg(m any) error          { return s.Send(m.(*Resp)) }
func (s pipeServer[Req, Resp]) RecvMsg(any) error            { return errNoRawMessages }
