package sim

import (
	"context"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Streams (watch, lease keep-alive) reach a member as gRPC streams do: a
// task runs the service's own stream handler (its receive side a task of
// its own, through grpcsvc.Backend.Go), on an in-process stream, through
// the server's metrics interceptor and the guard's stream checks (a
// learner refuses them; one that requires a leader is refused without
// one, and ended by the guard once the member has been without one for
// long), and the client learns, after the network, what the stream ended
// with.

// gRPC names of the streams the simulated clients open.
const (
	watchMethod     = "/etcdserverpb.Watch/Watch"
	keepAliveMethod = "/etcdserverpb.Lease/LeaseKeepAlive"
)

// streamContext is the context a client's stream reaches a member with,
// from the client's ctx: its token, and, when it asks, etcd's
// require-leader metadata (clientv3.WithRequireLeader, which clientv3's
// keep-alives use).
func streamContext(ctx context.Context, token string, requireLeader bool) context.Context {
	var kv []string
	if token != "" {
		kv = append(kv, "token", token)
	}
	if requireLeader {
		kv = append(kv, rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader)
	}
	if len(kv) == 0 {
		return ctx
	}
	return metadata.NewIncomingContext(ctx, metadata.Pairs(kv...))
}

// streamRPC is a stream of a member's services, by its full gRPC name.
type streamRPC struct{ method string }

// The streams the simulated clients open.
var (
	watchRPC     = streamRPC{watchMethod}
	keepAliveRPC = streamRPC{keepAliveMethod}
)

// streamBase is what every in-process server stream shares: the
// stream's context, and headers and trailers, which no simulated client
// reads.
type streamBase struct{ ctx context.Context }

func (s *streamBase) Context() context.Context     { return s.ctx }
func (s *streamBase) SetHeader(metadata.MD) error  { return nil }
func (s *streamBase) SendHeader(metadata.MD) error { return nil }
func (s *streamBase) SetTrailer(metadata.MD)       {}

// runStream runs rpc's handler on ss, in the running task, through the
// server's metrics interceptor and the guard's, as the gRPC server chains
// them.
func (m *member) runStream(rpc streamRPC, ss grpc.ServerStream, info *grpc.StreamServerInfo) error {
	s, err := m.svc.stream(rpc.method)
	if err != nil {
		return err
	}
	guard := m.guard.StreamInterceptor()
	return m.inst.Stream(s.impl, ss, info, func(srv any, metered grpc.ServerStream) error {
		return guard(srv, metered, info, s.h)
	})
}

// serverStream is a bidirectional stream in process: the handler's Recv
// takes the client's messages that reached the member (in), its Send
// goes through send.
type serverStream struct {
	streamBase
	in   *inbox
	send func(m any) error
}

func (s *serverStream) RecvMsg(m any) error { return s.in.recv(s.ctx, m.(proto.Message)) }
func (s *serverStream) SendMsg(m any) error { return s.send(m) }

// serveStream runs rpc's handler on m, as a task, on a stream from a
// client whose context is ctx (the client cancels it when it hangs up);
// ended gets, after the network, the error the stream ended with (nil:
// the handler ended it cleanly). As gRPC's, the stream's context ends
// with its handler: a receive side still waiting then sees it.
func (m *member) serveStream(ctx context.Context, rpc streamRPC, ss *serverStream, ended func(error)) {
	w, guard := m.w, m.guard
	if !m.serving() || guard == nil {
		w.after(w.settings.Net.LatencyMinUs, func() { ended(rpctypes.ErrGRPCStopped) })
		return
	}
	ss.in.m, ss.in.inc = m, m.inc
	info := &grpc.StreamServerInfo{FullMethod: rpc.method, IsClientStream: true, IsServerStream: true}
	w.spawn(func() {
		var finished context.CancelFunc
		ss.ctx, finished = context.WithCancel(ctx)
		err := m.runStream(rpc, ss, info)
		ss.in.hangUp(finished)
		w.after(w.settings.Net.LatencyMinUs, func() { ended(err) })
	})
}

// inbox holds what a client sent on a stream that reached the member,
// until the handler's Recv takes it.
type inbox struct {
	m    *member
	inc  int
	msgs []proto.Message
	// taken counts the messages the handler took.
	taken int
	// arrived is the handler's receive side waiting for a message.
	arrived *signal
}

// inboxMax bounds the messages waiting on a stream: a client sends one
// at a time (a keep-alive, a watch request) and waits or paces itself.
const inboxMax = 64

// put is a message reaching the member.
func (q *inbox) put(msg proto.Message) {
	if len(q.msgs) >= inboxMax {
		panic("sim: a stream's inbox is over inboxMax")
	}
	q.msgs = append(q.msgs, msg)
	if a := q.arrived; a != nil {
		q.arrived = nil
		a.Fire()
	}
}

// recv is the handler's Recv: the next message that reached the member,
// copied into m; or the error gRPC's gives when the client hung up (its
// context canceled), or the member's when it stopped.
func (q *inbox) recv(ctx context.Context, m proto.Message) error {
	for len(q.msgs) == 0 || ctx.Err() != nil {
		q.arrived = q.m.newSignal(q.inc)
		if err := q.arrived.Wait(ctx); err != nil {
			q.arrived = nil
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return rpctypes.ErrGRPCStopped
		}
	}
	proto.Merge(m, q.msgs[0])
	q.msgs = q.msgs[1:]
	q.taken++
	return nil
}

// hangUp ends the stream's context with cancel (the client hung up, or
// the handler returned), and wakes the member's waits to see it, as the
// real runtime's waits watch their contexts.
func (q *inbox) hangUp(cancel context.CancelFunc) {
	cancel()
	if m := q.m; m != nil && m.inc == q.inc {
		m.wakeWaits()
	}
}

// monitorLeader lets the guard check, once per election timeout as the
// server does, whether the member has a leader: it ends the streams that
// require one after a few checks without. Their handlers may wait on
// the member, unaware of their context: they are woken to see it ended.
func (m *member) monitorLeader() {
	w, inc := m.w, m.inc
	everyUs := int64(w.settings.ElectionTicks) * w.settings.TickUs
	var check func()
	check = func() {
		if m.inc != inc || !m.up {
			return
		}
		if !m.paused && m.guard.CheckLeader() > 0 {
			w.trace.logf(w.now, "%s ends the streams that require a leader", m.name)
			m.wakeWaits()
		}
		w.after(everyUs, check)
	}
	w.after(everyUs, check)
}
