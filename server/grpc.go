package server

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/detcd/detcd/grpcsvc"
)

// grpcShutdownMax bounds how long Stop lets gRPC calls in flight finish.
const grpcShutdownMax = 5 * time.Second

// clientGRPC is etcd's gRPC API on the client addresses: the gRPC server
// with etcd's services over the member's grpcsvc.Backend, their
// interceptors (etcd's metrics, the guard) and the gRPC health service.
type clientGRPC struct {
	srv   *grpc.Server
	hs    *health.Server
	guard *grpcsvc.Guard
}

func newClientGRPC(cfg *Config, b grpcsvc.Backend, role grpcsvc.Role, m *metrics, mem *memReleaser) *clientGRPC {
	g := &clientGRPC{guard: grpcsvc.NewGuard(role)}
	opts := append(grpcsvc.ServerOptions(grpcsvc.Options{
		MaxRequestBytes:      cfg.MaxRequestBytes,
		MaxConcurrentStreams: cfg.MaxConcurrentStreams,
		KeepaliveMinTime:     cfg.GRPCKeepAliveMinTime,
		KeepaliveInterval:    cfg.GRPCKeepAliveInterval,
		KeepaliveTimeout:     cfg.GRPCKeepAliveTimeout,
	}), grpc.ChainUnaryInterceptor(m.grpc.unary, m.unary, mem.afterDefragment),
		grpc.ChainStreamInterceptor(m.grpc.stream, m.stream),
		grpc.ForceServerCodecV2(m.req.codec()))
	opts = append(opts, g.guard.ServerOptions()...)
	g.srv = grpc.NewServer(opts...)
	g.hs = grpcsvc.Register(g.srv, b)
	m.grpc.initialize(g.srv.GetServiceInfo(), true)
	return g
}

// serving tells gRPC health checkers the member serves.
func (g *clientGRPC) serving() { g.hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING) }

// monitorLeader lets the guard end the streams that require a leader once
// the member has been without one for a while (see grpcsvc.Guard).
func (g *clientGRPC) monitorLeader(every time.Duration, stopping <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stopping:
			return
		case <-t.C:
			g.guard.CheckLeader()
		}
	}
}

// stop says the member no longer serves and lets calls in flight finish
// for a while.
func (g *clientGRPC) stop() {
	g.hs.Shutdown()
	done := make(chan struct{})
	go func() { g.srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grpcShutdownMax):
		g.srv.Stop()
	}
}
