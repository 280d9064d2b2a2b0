package grpcsvc

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

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
