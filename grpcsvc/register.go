package grpcsvc

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

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
func ServerOptions(maxRequestBytes int) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRequestBytes + grpcOverheadBytes),
		grpc.MaxSendMsgSize(1<<31 - 1),
		grpc.MaxConcurrentStreams(1<<32 - 1),
		// Reusing handler goroutines saves growing a fresh goroutine's
		// stack for every request, a fifth of a small request's cost.
		grpc.NumStreamWorkers(streamWorkers),
	}
}

// Register adds etcd's services and the gRPC health service to srv.
func Register(srv *grpc.Server, b Backend) *health.Server {
	pb.RegisterKVServer(srv, &kvServer{b: b})
	pb.RegisterMaintenanceServer(srv, &maintenanceServer{b: b})
	pb.RegisterClusterServer(srv, &clusterServer{b: b})
	pb.RegisterWatchServer(srv, &watchServer{b: b})
	pb.RegisterLeaseServer(srv, &leaseServer{b: b})
	pb.RegisterAuthServer(srv, &authServer{b: b})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	return hs
}

func mvccRev(r int64) mvcc.Revision { return mvcc.Revision(r) }
