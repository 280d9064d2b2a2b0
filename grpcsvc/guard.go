package grpcsvc

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Role is what the guard needs to know of the member, read on every call.
type Role interface {
	// Leader is the member's current leader, 0 if it knows none.
	Leader() uint64
	// IsLearner reports whether the member is a learner.
	IsLearner() bool
}

// NoLeaderChecksMax is how many consecutive leader checks (one per
// election timeout) must find no leader before the guard ends the streams
// that require one: etcd's maxNoLeaderCnt. Reconnecting a stream costs
// more than refusing a new request, so the streams get longer.
const NoLeaderChecksMax = 3

// Guard holds etcd's checks that run before any handler:
//   - a learner serves only Status and serializable ranges (and no
//     streams): anything else gets ErrGRPCNotSupportedForLearner;
//   - a call whose metadata requires a leader (clientv3.WithRequireLeader,
//     which clientv3 uses for its lease keep-alives) gets ErrGRPCNoLeader
//     from a member that knows none, and such a stream ends with that
//     error once the member has been without a leader for
//     NoLeaderChecksMax election timeouts (see CheckLeader), so that the
//     client moves to another member.
//
// Only etcd's own services are guarded; the gRPC health service is not.
type Guard struct {
	role Role

	mu      sync.Mutex
	streams map[*leaderStream]struct{}
	// noLeader counts consecutive CheckLeader calls that found no leader.
	noLeader int
}

// NewGuard returns a guard for a member.
func NewGuard(role Role) *Guard {
	return &Guard{role: role, streams: map[*leaderStream]struct{}{}}
}

// StreamInterceptor is the guard's stream interceptor, which
// ServerOptions installs: the simulator chains it as the gRPC server
// does.
func (g *Guard) StreamInterceptor() grpc.StreamServerInterceptor { return g.stream }

// ServerOptions installs the guard's interceptors.
func (g *Guard) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(g.unary), grpc.ChainStreamInterceptor(g.stream)}
}

// guarded reports whether a method is one of etcd's services': its KV,
// Watch, ... and the Lock and Election built on them.
func guarded(method string) bool {
	for _, svc := range []string{"/etcdserverpb.", "/v3lockpb.", "/v3electionpb."} {
		if strings.HasPrefix(method, svc) {
			return true
		}
	}
	return false
}

// requiresLeader reports whether the client asked for a leader. It reads
// the one key: FromIncomingContext copies all of the call's metadata, a
// sixth of the server's CPU of a short stream (a keep-alive's).
func requiresLeader(ctx context.Context) bool {
	ks := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataRequireLeaderKey)
	return len(ks) > 0 && ks[0] == rpctypes.MetadataHasLeader
}

func learnerMay(req any) bool {
	switch r := req.(type) {
	case *pb.StatusRequest:
		return true
	case *pb.RangeRequest:
		return r.Serializable
	}
	return false
}

func (g *Guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if guarded(info.FullMethod) {
		if g.role.IsLearner() && !learnerMay(req) {
			return nil, rpctypes.ErrGRPCNotSupportedForLearner
		}
		if g.role.Leader() == 0 && requiresLeader(ctx) {
			return nil, rpctypes.ErrGRPCNoLeader
		}
	}
	return handler(ctx, req)
}

// Unary runs a unary call through the guard's checks, as the gRPC
// server's interceptor chain does: for callers in process (the
// simulator), method is the call's full gRPC name.
func (g *Guard) Unary(ctx context.Context, method string, req any, handler grpc.UnaryHandler) (any, error) {
	return g.unary(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, handler)
}

// snapshotMethod is the one stream etcd lets a learner serve.
const snapshotMethod = "/etcdserverpb.Maintenance/Snapshot"

func (g *Guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return g.Stream(ss.Context(), info.FullMethod, func(ctx context.Context) error {
		if ctx == ss.Context() {
			return handler(srv, ss)
		}
		return handler(srv, &guardedStream{ServerStream: ss, ctx: ctx})
	})
}

// Stream runs a stream's handler through the guard's checks, as the gRPC
// server's stream interceptor does (for callers in process, the
// simulator, method is the stream's full gRPC name): the handler gets
// the stream's context, which the guard ends when the stream requires a
// leader and the member has been without one for long (CheckLeader).
func (g *Guard) Stream(ctx context.Context, method string, handler func(context.Context) error) error {
	if !guarded(method) {
		return handler(ctx)
	}
	if g.role.IsLearner() && method != snapshotMethod {
		return rpctypes.ErrGRPCNotSupportedForLearner
	}
	if !requiresLeader(ctx) {
		return handler(ctx)
	}
	if g.role.Leader() == 0 {
		return rpctypes.ErrGRPCNoLeader
	}
	ctx, cancel := context.WithCancel(context.WithValue(ctx, endsApartKey{}, true))
	gs := &leaderStream{cancel: cancel}
	g.mu.Lock()
	g.streams[gs] = struct{}{}
	g.mu.Unlock()
	err := handler(ctx)
	g.mu.Lock()
	delete(g.streams, gs)
	g.mu.Unlock()
	cancel()
	if gs.byGuard.Load() {
		return rpctypes.ErrGRPCNoLeader
	}
	return err
}

// endsApartKey marks the context of a stream the guard may end.
type endsApartKey struct{}

// StreamEndsApart reports whether ctx, a stream handler's, may end while
// the stream stays open: the guard ends a stream that requires a leader
// once the member has been without one for long (CheckLeader), and a
// handler waiting in the stream's Recv would not see that. Any other
// stream's context ends with the stream, and its Recv returns then.
func StreamEndsApart(ctx context.Context) bool { return ctx.Value(endsApartKey{}) != nil }

// CheckLeader is called once per election timeout: after NoLeaderChecksMax
// calls in a row without a leader, it ends every stream that requires one.
// It returns how many it ended: the simulator then wakes their handlers,
// whose waits do not watch the context.
func (g *Guard) CheckLeader() (ended int) {
	if g.role.Leader() != 0 {
		g.mu.Lock()
		g.noLeader = 0
		g.mu.Unlock()
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.noLeader++; g.noLeader < NoLeaderChecksMax {
		return 0
	}
	g.noLeader = 0
	for gs := range g.streams { //detcd:maporder-ok: each stream ends on its own
		gs.end()
	}
	return len(g.streams)
}

// leaderStream is a stream that requires a leader: the guard can end it.
type leaderStream struct {
	cancel context.CancelFunc
	// byGuard is set when the guard ended the stream.
	byGuard atomic.Bool
}

func (s *leaderStream) end() {
	s.byGuard.Store(true)
	s.cancel()
}

// guardedStream is a gRPC stream with the context the guard gave it.
type guardedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *guardedStream) Context() context.Context { return s.ctx }
