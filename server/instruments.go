package server

import (
	"context"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/grpcsvc"
)

// Instruments are what a member shows of itself off its loop: the state
// the loop last published (status.go), the cluster version it applied,
// etcd's metrics, and the health endpoints over them. They open no
// socket and start no goroutine: New installs them on the real runtime,
// and the simulator installs them on every simulated member, so that
// both run this code.
type Instruments struct {
	status  *memberStatus
	version *clusterVersion
	metrics *metrics
	// timeout bounds a health check's read: etcd's request timeout (0:
	// no bound but the member's own).
	timeout time.Duration
}

// NewInstruments makes the instruments of member id configured by cfg;
// members is the membership the member last saw, read when scraped.
func NewInstruments(cfg *Config, id uint64, members func() []core.Member) *Instruments {
	in := &Instruments{status: &memberStatus{id: id}, version: newClusterVersion(), timeout: cfg.requestTimeout()}
	in.metrics = newMetrics(metricSources{cfg: cfg, status: in.status, members: members,
		peer: newPeerMetrics(), wal: newWALMetrics(), version: in.version})
	return in
}

// SimulatedTime takes the wall-clock deadline off the health checks'
// reads: in simulated time the member's own request timeout, in ticks,
// ends them, and a wall-clock one would make a run depend on the speed of
// the machine that runs it.
func (in *Instruments) SimulatedTime() { in.timeout = 0 }

// Observer is the driver.Observer that feeds the log's disk metrics.
func (in *Instruments) Observer() driver.Observer { return in.metrics.wal }

// Publish makes what a turn of the loop left visible off the loop: the
// member's status, its leader changes and alarms, the cluster version.
// On the loop, after every turn.
func (in *Instruments) Publish(n *core.Node) {
	p := publishedOf(n)
	if in.status.store(p) {
		in.metrics.leaderChanges.Inc()
	}
	in.metrics.alarms.publish(p.alarms)
	in.version.set(n.ClusterVersion())
}

// Unary is the simulator's interceptor around its calls of the services:
// the gRPC server's metrics, then etcd's request metrics, as the server
// chains the two (newClientGRPC).
func (in *Instruments) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return in.metrics.grpc.unary(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return in.metrics.unary(ctx, req, info, handler)
	})
}

// Stream is Unary's stream interceptor: the gRPC server's metrics, then
// etcd's metrics of streams and of what they carry.
func (in *Instruments) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return in.metrics.grpc.stream(srv, ss, info, func(srv any, ss grpc.ServerStream) error {
		return in.metrics.stream(srv, ss, info, handler)
	})
}

// ServeGRPC resolves the gRPC server's metrics of the services, at zero,
// as a server starting with them does, except that each handled series is
// made when a call first ends with its code: the simulator's members,
// whose services are not on a grpc.Server, call it with theirs.
func (in *Instruments) ServeGRPC(services map[string]grpc.ServiceInfo) {
	in.metrics.grpc.initialize(services, false)
}

// healthChecks are the health endpoints' checks of the member whose
// requests b serves.
func (in *Instruments) healthChecks(b grpcsvc.Backend) *healthChecks {
	return &healthChecks{backend: b, status: in.status, timeout: in.timeout, metrics: in.metrics.health}
}

// ClientHandler serves etcd's HTTP endpoints on the client URLs, as cfg
// configures them (--cors, --enable-pprof), for the member whose requests
// b serves: /version, /metrics, /health, /livez, /readyz and /debug/vars.
// They are the endpoints the server serves (newHTTPEndpoints), without
// the JSON gateway, which dials the gRPC server; the simulator calls the
// handler as a task.
func (in *Instruments) ClientHandler(cfg *Config, b grpcsvc.Backend) http.Handler {
	return newHTTPEndpoints(cfg, in.metrics.reg, in.healthChecks(b), nil, in.version).endpoints()
}
