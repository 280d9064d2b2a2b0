package grpcsvc

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
)

// Services are etcd's v3 services over one member. Register serves them
// over gRPC; the simulator calls them in process, with the requests as
// etcd's protobufs, so that its clients run the code users' clients do.
type Services struct {
	KV          pb.KVServer
	Lease       *LeaseService
	Watch       *WatchService
	Auth        pb.AuthServer
	Cluster     pb.ClusterServer
	Maintenance pb.MaintenanceServer
	Lock        v3lockpb.LockServer
	Election    v3electionpb.ElectionServer
}

// NewServices returns the services over b.
func NewServices(b Backend) *Services {
	kv, lease := &kvServer{b: b}, &LeaseService{b: b}
	c := &concurrency{b: b, kv: kv, lease: lease}
	return &Services{
		KV:          kv,
		Lease:       lease,
		Watch:       &WatchService{b: b},
		Auth:        &authServer{b: b},
		Cluster:     &clusterServer{b: b},
		Maintenance: &maintenanceServer{b: b},
		Lock:        &lockServer{c: c},
		Election:    &electionServer{c: c},
	}
}
