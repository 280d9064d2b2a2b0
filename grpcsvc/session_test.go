package grpcsvc

import (
	"context"
	"errors"
	"io"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/watch"
)

// keepAliveMember answers keep-alives with ttl, or fails them with err.
type keepAliveMember struct {
	Backend
	ttl int64
	err error
	// asked counts the keep-alives that reached the member.
	asked int
}

func (b *keepAliveMember) Do(_ context.Context, r core.Request) (core.Response, error) {
	b.asked++
	if b.err != nil {
		return core.Response{Err: b.err}, nil
	}
	return core.Response{Msg: &pb.LeaseKeepAliveResponse{ID: r.LeaseKeepAlive.ID, TTL: b.ttl}}, nil
}

// TestKeepAliveSessionStep: each step of a keep-alive stream decides as
// etcd's handler does: a client done sending ends it cleanly, a failed
// receive or renewal ends it with etcd's error, an unknown lease is
// answered with TTL 0 and the stream goes on.
func TestKeepAliveSessionStep(t *testing.T) {
	errRecv := status.Error(codes.Canceled, "context canceled")
	errSend := errors.New("send failed")
	req := &pb.LeaseKeepAliveRequest{ID: 7}
	for _, tc := range []struct {
		name     string
		member   keepAliveMember
		req      *pb.LeaseKeepAliveRequest
		recvErr  error
		sendErr  error
		wantDone bool
		wantErr  error
		wantTTL  int64 // of the answer sent, -1 for none
		wantAsks int
	}{
		{"renewed", keepAliveMember{ttl: 5}, req, nil, nil, false, nil, 5, 1},
		{"unknown lease", keepAliveMember{}, req, nil, nil, false, nil, 0, 1},
		{"client done sending", keepAliveMember{ttl: 5}, nil, io.EOF, nil, true, nil, -1, 0},
		{"receive failed", keepAliveMember{ttl: 5}, nil, errRecv, nil, true, errRecv, -1, 0},
		{"no leader", keepAliveMember{err: core.ErrNoLeader}, req, nil, nil, true, rpctypes.ErrGRPCNoLeader, -1, 1},
		{"not leader", keepAliveMember{err: core.ErrNotLeader}, req, nil, nil, true, rpctypes.ErrGRPCNotLeader, -1, 1},
		{"send failed", keepAliveMember{ttl: 5}, req, nil, errSend, true, errSend, 5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.member
			sent := int64(-1)
			sess := (&LeaseService{b: &b}).OpenKeepAlive(func(r *pb.LeaseKeepAliveResponse) error {
				sent = r.TTL
				return tc.sendErr
			})
			done, err := sess.Step(context.Background(), tc.req, tc.recvErr)
			if done != tc.wantDone || !errors.Is(err, tc.wantErr) || sent != tc.wantTTL || b.asked != tc.wantAsks {
				t.Fatalf("Step: done %v err %v, sent TTL %d, %d asked; want done %v err %v, TTL %d, %d asked",
					done, err, sent, b.asked, tc.wantDone, tc.wantErr, tc.wantTTL, tc.wantAsks)
			}
		})
	}
}

// The fake members run helpers as the real runtime does, on goroutines,
// and signal on channels.
func (b *keepAliveMember) Go(fn func())      { go fn() }
func (b *keepAliveMember) NewSignal() Signal { return make(chanSignal, 1) }
func (b *watchMember) Go(fn func())          { go fn() }

type chanSignal chan struct{}

func (s chanSignal) Fire() {
	select {
	case s <- struct{}{}:
	default:
	}
}

func (s chanSignal) Wait(ctx context.Context) error {
	select {
	case <-s:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestLeaseKeepAliveHandlerEndsWithItsContext: the handler ends when its
// context does, the client gone, while it waits for the client's next
// keep-alive.
func TestLeaseKeepAliveHandlerEndsWithItsContext(t *testing.T) {
	s := &LeaseService{b: &keepAliveMember{ttl: 9}}
	ctx, cancel := context.WithCancel(context.Background())
	stream := startPipe(ctx, s.LeaseKeepAlive)
	if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: 1}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.ID != 1 {
		t.Fatalf("keep-alive: %v, %v", resp, err)
	}
	cancel()
	if resp, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("after the context ended: %v, %v; want code %v", resp, err, codes.Canceled)
	}
}

// kaGuardedStream is a keep-alive stream with the context the guard gave
// its handler.
type kaGuardedStream struct {
	pb.Lease_LeaseKeepAliveServer
	ctx context.Context
}

func (s kaGuardedStream) Context() context.Context { return s.ctx }

// TestLeaseKeepAliveHandlerEndedByGuard: a stream that requires a leader
// ends with etcd's "no leader" once the guard ends it, though nothing
// ends the stream's Recv, which waits for the client's next keep-alive:
// the handler then runs its receive side apart.
func TestLeaseKeepAliveHandlerEndedByGuard(t *testing.T) {
	s := &LeaseService{b: &keepAliveMember{ttl: 9}}
	role := &fakeRole{leader: 1}
	g := NewGuard(role)
	stream := startPipe(requireLeaderCtx(), func(ss pb.Lease_LeaseKeepAliveServer) error {
		return g.Stream(ss.Context(), "/etcdserverpb.Lease/LeaseKeepAlive", func(ctx context.Context) error {
			if !StreamEndsApart(ctx) {
				t.Error("the guard's context of a stream that requires a leader does not say it may end apart")
			}
			return s.LeaseKeepAlive(kaGuardedStream{ss, ctx})
		})
	})
	if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: 1}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.ID != 1 {
		t.Fatalf("keep-alive: %v, %v", resp, err)
	}
	role.leader = 0
	for range NoLeaderChecksMax {
		g.CheckLeader()
	}
	if resp, err := stream.Recv(); !errors.Is(err, rpctypes.ErrGRPCNoLeader) {
		t.Fatalf("after the guard ended the stream: %v, %v; want %v", resp, err, rpctypes.ErrGRPCNoLeader)
	}
}

// TestStreamEndsApart: only the guard's contexts of streams that require
// a leader may end while the stream stays open.
func TestStreamEndsApart(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want bool
	}{
		{"requires a leader", requireLeaderCtx(), true},
		{"does not", context.Background(), false},
	} {
		var got bool
		err := NewGuard(&fakeRole{leader: 1}).Stream(tc.ctx, "/etcdserverpb.Lease/LeaseKeepAlive", func(ctx context.Context) error {
			got = StreamEndsApart(ctx)
			return nil
		})
		if err != nil || got != tc.want {
			t.Errorf("%s: StreamEndsApart %v (%v), want %v", tc.name, got, err, tc.want)
		}
	}
}

// TestLeaseKeepAliveHandler: the gRPC handler runs the session's steps
// over its stream: an answer per request, and a clean end when the
// client is done sending.
func TestLeaseKeepAliveHandler(t *testing.T) {
	s := &LeaseService{b: &keepAliveMember{ttl: 9}}
	stream := startPipe(context.Background(), s.LeaseKeepAlive)
	for id := int64(1); id <= 2; id++ {
		if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || resp.ID != id || resp.TTL != 9 {
			t.Fatalf("keep-alive %d: %v, %v", id, resp, err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after CloseSend: %v, %v; want the stream to end cleanly", resp, err)
	}
}

// fakeWatchStream is a member's side of a watch stream: Next answers
// outs once, then nextErr (or the context's error, once it ended).
type fakeWatchStream struct {
	outs     []watch.Out
	nextErr  error
	requests int
	credit   int
}

func (f *fakeWatchStream) Request(context.Context, *pb.WatchRequest) error {
	f.requests++
	return nil
}

func (f *fakeWatchStream) Next(ctx context.Context) ([]watch.Out, error) {
	if outs := f.outs; outs != nil {
		f.outs = nil
		return outs, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, f.nextErr
}

func (f *fakeWatchStream) Credit(_ context.Context, bytes int) error {
	f.credit += bytes
	return nil
}

func (f *fakeWatchStream) Close() {}

// watchMember opens ws as its watch streams; auth is off.
type watchMember struct {
	Backend
	ws *fakeWatchStream
}

func (b *watchMember) OpenWatch(context.Context) (WatchStream, error) { return b.ws, nil }
func (b *watchMember) MaxRequestBytes() int                           { return 1 << 20 }
func (b *watchMember) AuthEnabled() bool                              { return false }

// TestWatchSessionSteps: the steps of a watch stream decide as etcd's
// handler does: requests go to the member until the client is done
// sending or receiving fails; the send side delivers and gives credit
// back, and ends with the receive side's error first, else etcd's
// "watch canceled" for a canceled stream, else the member's error.
func TestWatchSessionSteps(t *testing.T) {
	errRecv := status.Error(codes.Canceled, "context canceled")
	progress := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}
	out := watch.Out{Resp: &pb.WatchResponse{WatchId: 1}, Bytes: 10}
	for _, tc := range []struct {
		name      string
		recvErr   error
		cancel    bool
		nextErr   error
		wantMore  bool
		wantErr   error
		wantRecvd int
	}{
		{"request, then the member stops", nil, false, core.ErrStopped, true, rpctypes.ErrGRPCStopped, 1},
		{"client done sending", io.EOF, false, core.ErrStopped, false, rpctypes.ErrGRPCStopped, 0},
		{"stream canceled", nil, true, nil, true, rpctypes.ErrGRPCWatchCanceled, 1},
		{"receive failed", errRecv, true, nil, false, errRecv, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := &fakeWatchStream{outs: []watch.Out{out}, nextErr: tc.nextErr}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var sent []*pb.WatchResponse
			sess, err := (&WatchService{b: &watchMember{ws: ws}}).Open(ctx, func(r *pb.WatchResponse) error {
				sent = append(sent, r)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			wantRecvErr := tc.recvErr
			if errors.Is(wantRecvErr, io.EOF) {
				wantRecvErr = nil // the stream goes on sending
			}
			more, rerr := sess.Receive(ctx, progress, tc.recvErr)
			if more != tc.wantMore || ws.requests != tc.wantRecvd || !errors.Is(rerr, wantRecvErr) {
				t.Fatalf("Receive: more %v err %v, %d requests; want more %v, %d requests", more, rerr, ws.requests, tc.wantMore, tc.wantRecvd)
			}
			if err := sess.Step(ctx); err != nil || len(sent) != 1 || ws.credit != out.Bytes {
				t.Fatalf("first Step: %v, sent %d, credit %d; want one response sent and its credit back", err, len(sent), ws.credit)
			}
			if tc.cancel {
				cancel()
			}
			if err := sess.Step(ctx); !errors.Is(err, tc.wantErr) {
				t.Fatalf("last Step: %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestGuardStream: streams opened in process go through the checks the
// gRPC interceptor runs.
func TestGuardStream(t *testing.T) {
	requireLeader := requireLeaderCtx()
	for _, tc := range []struct {
		name    string
		role    fakeRole
		ctx     context.Context
		method  string
		wantErr error
	}{
		{"watch", fakeRole{leader: 1}, context.Background(), "/etcdserverpb.Watch/Watch", nil},
		{"learner watch", fakeRole{leader: 1, learner: true}, context.Background(), "/etcdserverpb.Watch/Watch", rpctypes.ErrGRPCNotSupportedForLearner},
		{"learner keep-alive", fakeRole{leader: 1, learner: true}, requireLeader, "/etcdserverpb.Lease/LeaseKeepAlive", rpctypes.ErrGRPCNotSupportedForLearner},
		{"learner snapshot", fakeRole{leader: 1, learner: true}, context.Background(), "/etcdserverpb.Maintenance/Snapshot", nil},
		{"no leader, required", fakeRole{}, requireLeader, "/etcdserverpb.Lease/LeaseKeepAlive", rpctypes.ErrGRPCNoLeader},
		{"no leader, not required", fakeRole{}, context.Background(), "/etcdserverpb.Watch/Watch", nil},
		{"learner health watch", fakeRole{learner: true}, requireLeader, "/grpc.health.v1.Health/Watch", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			err := NewGuard(&tc.role).Stream(tc.ctx, tc.method, func(context.Context) error {
				called = true
				return nil
			})
			if !errors.Is(err, tc.wantErr) || called != (tc.wantErr == nil) {
				t.Fatalf("err %v (handler called: %v), want %v", err, called, tc.wantErr)
			}
		})
	}
}
