package grpcsvc

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
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
}

// NewServices returns the services over b.
func NewServices(b Backend) *Services {
	return &Services{
		KV:          &kvServer{b: b},
		Lease:       &LeaseService{b: b},
		Watch:       &WatchService{b: b},
		Auth:        &authServer{b: b},
		Cluster:     &clusterServer{b: b},
		Maintenance: &maintenanceServer{b: b},
	}
}
