package grpcsvc

import (
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc"
	// etcd's server accepts gzip-compressed requests: a client that
	// compresses must not get Unimplemented.
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/detcd/detcd/core/mvcc"
)

// grpcOverheadBytes is what etcd allows on top of --max-request-bytes for
// gRPC framing, so that a request just under the limit is not cut off by
// gRPC before detcd can answer with etcd's "request is too large".
const grpcOverheadBytes = 512 * 1024

// streamWorkers is the pool of goroutines that serve requests; when all
// are busy gRPC starts a goroutine per request as it does without a pool.
const streamWorkers = 256

// ServerOptions are the gRPC options etcd's client port uses.
func ServerOptions(o Options) []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(o.MaxRequestBytes + grpcOverheadBytes),
		grpc.MaxSendMsgSize(1<<31 - 1),
		grpc.MaxConcurrentStreams(o.MaxConcurrentStreams),
		// Reusing handler goroutines saves growing a fresh goroutine's
		// stack for every request, a fifth of a small request's cost.
		grpc.NumStreamWorkers(streamWorkers),
		// etcd's keep-alive policy: clients may ping as often as
		// KeepaliveMinTime (gRPC's own default, 5 minutes, would send
		// clients that ping every 30 s, as Kubernetes' do, away).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: o.KeepaliveMinTime}),
	}
	if o.KeepaliveInterval > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{Time: o.KeepaliveInterval, Timeout: o.KeepaliveTimeout}))
	}
	return opts
}

// Options are the gRPC server's settings, etcd's --max-request-bytes,
// --max-concurrent-streams and --grpc-keepalive-*.
type Options struct {
	MaxRequestBytes      int
	MaxConcurrentStreams uint32
	KeepaliveMinTime     time.Duration
	KeepaliveInterval    time.Duration
	KeepaliveTimeout     time.Duration
}

// Register adds etcd's services, Lock and Election included, and the
// gRPC health service to srv.
func Register(srv grpc.ServiceRegistrar, b Backend) *health.Server {
	svc := NewServices(b)
	pb.RegisterKVServer(srv, svc.KV)
	pb.RegisterMaintenanceServer(srv, svc.Maintenance)
	pb.RegisterClusterServer(srv, svc.Cluster)
	pb.RegisterWatchServer(srv, svc.Watch)
	pb.RegisterLeaseServer(srv, svc.Lease)
	pb.RegisterAuthServer(srv, svc.Auth)
	v3lockpb.RegisterLockServer(srv, svc.Lock)
	v3electionpb.RegisterElectionServer(srv, svc.Election)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	return hs
}

func mvccRev(r int64) mvcc.Revision { return mvcc.Revision(r) }
