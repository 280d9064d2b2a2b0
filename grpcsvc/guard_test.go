package grpcsvc

import (
	"context"
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

type fakeRole struct {
	leader  uint64
	learner bool
}

func (r *fakeRole) Leader() uint64  { return r.leader }
func (r *fakeRole) IsLearner() bool { return r.learner }

// requireLeaderCtx is a call's context with clientv3.WithRequireLeader's
// metadata.
func requireLeaderCtx() context.Context {
	return metadata.NewIncomingContext(context.Background(),
		metadata.Pairs(rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader))
}

func TestGuardUnary(t *testing.T) {
	requireLeader := requireLeaderCtx()
	for _, tc := range []struct {
		name    string
		role    fakeRole
		ctx     context.Context
		method  string
		req     any
		wantErr error
	}{
		{"leader known", fakeRole{leader: 1}, requireLeader, "/etcdserverpb.KV/Put", &pb.PutRequest{}, nil},
		{"no leader, not required", fakeRole{}, context.Background(), "/etcdserverpb.KV/Put", &pb.PutRequest{}, nil},
		{"no leader, required", fakeRole{}, requireLeader, "/etcdserverpb.KV/Put", &pb.PutRequest{}, rpctypes.ErrGRPCNoLeader},
		{"learner put", fakeRole{leader: 1, learner: true}, context.Background(), "/etcdserverpb.KV/Put", &pb.PutRequest{}, rpctypes.ErrGRPCNotSupportedForLearner},
		{"learner linearizable range", fakeRole{leader: 1, learner: true}, context.Background(), "/etcdserverpb.KV/Range", &pb.RangeRequest{}, rpctypes.ErrGRPCNotSupportedForLearner},
		{"learner serializable range", fakeRole{leader: 1, learner: true}, context.Background(), "/etcdserverpb.KV/Range", &pb.RangeRequest{Serializable: true}, nil},
		{"learner status", fakeRole{leader: 1, learner: true}, context.Background(), "/etcdserverpb.Maintenance/Status", &pb.StatusRequest{}, nil},
		{"learner member list", fakeRole{leader: 1, learner: true}, context.Background(), "/etcdserverpb.Cluster/MemberList", &pb.MemberListRequest{}, rpctypes.ErrGRPCNotSupportedForLearner},
		{"learner health check", fakeRole{learner: true}, requireLeader, "/grpc.health.v1.Health/Check", nil, nil},
		{"learner lock", fakeRole{leader: 1, learner: true}, context.Background(), "/v3lockpb.Lock/Lock", &v3lockpb.LockRequest{}, rpctypes.ErrGRPCNotSupportedForLearner},
		{"no leader, required, campaign", fakeRole{}, requireLeader, "/v3electionpb.Election/Campaign", &v3electionpb.CampaignRequest{}, rpctypes.ErrGRPCNoLeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGuard(&tc.role)
			called := false
			_, err := g.unary(tc.ctx, tc.req, &grpc.UnaryServerInfo{FullMethod: tc.method}, func(context.Context, any) (any, error) {
				called = true
				return nil, nil
			})
			if !errors.Is(err, tc.wantErr) || called != (tc.wantErr == nil) {
				t.Fatalf("err %v (handler called: %v), want %v", err, called, tc.wantErr)
			}
		})
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *fakeStream) Context() context.Context { return s.ctx }

func TestGuardEndsStreamsWithoutLeader(t *testing.T) {
	role := &fakeRole{leader: 1}
	g := NewGuard(role)
	ctx := requireLeaderCtx()
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- g.stream(nil, &fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: "/etcdserverpb.Watch/Watch"},
			func(_ any, ss grpc.ServerStream) error {
				close(started)
				<-ss.Context().Done()
				return rpctypes.ErrGRPCWatchCanceled
			})
	}()
	<-started
	role.leader = 0
	for i := 1; i < NoLeaderChecksMax; i++ {
		g.CheckLeader()
		select {
		case err := <-done:
			t.Fatalf("the stream ended after %d checks without a leader: %v", i, err)
		default:
		}
	}
	if ended := g.CheckLeader(); ended != 1 {
		t.Fatalf("the guard ended %d streams, want 1", ended)
	}
	if err := <-done; !errors.Is(err, rpctypes.ErrGRPCNoLeader) {
		t.Fatalf("the stream ended with %v, want %v", err, rpctypes.ErrGRPCNoLeader)
	}
}
