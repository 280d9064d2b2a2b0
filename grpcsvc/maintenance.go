package grpcsvc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	b Backend
}

func (s *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	return do[*pb.AlarmResponse](ctx, s.b, core.Request{Alarm: r})
}

func (s *maintenanceServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	resp, err := do[*pb.StatusResponse](ctx, s.b, core.Request{Status: true})
	if err != nil {
		return nil, err
	}
	resp.Version = s.b.Version()
	if resp.StorageVersion == "" {
		resp.StorageVersion = storageVersion
	}
	return resp, nil
}

// Downgrade validates, enables or cancels a downgrade job, as etcd does.
func (s *maintenanceServer) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return do[*pb.DowngradeResponse](ctx, s.b, core.Request{Downgrade: r})
}

// storageVersion is the storage format etcd 3.7 reports; detcd's own
// format differs, but clients only display it.
const storageVersion = "3.7.0"

// Defragment answers, as etcd does, with an empty response: no header.
func (s *maintenanceServer) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if _, err := do[*pb.DefragmentResponse](ctx, s.b, core.Request{Defragment: true}); err != nil {
		return nil, err
	}
	return &pb.DefragmentResponse{}, nil
}

// snapshot returns a view to hash, off the loop.
func (s *maintenanceServer) snapshot(ctx context.Context) (core.Response, error) {
	resp, err := s.b.Do(ctx, core.Request{Snapshot: true})
	if err != nil {
		return resp, toGRPC(err)
	}
	return resp, toGRPC(resp.Err)
}

func (s *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	resp, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	h, err := core.KVHashAt(resp.View, resp.Hashes, r.Revision)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.HashKVResponse{
		Header:          withRevision(resp.Header, int64(resp.View.Rev())),
		Hash:            h.Hash,
		CompactRevision: int64(h.CompactRev),
		HashRevision:    int64(h.Rev),
	}, nil
}

// Hash is etcd's hash of its whole database file; detcd has no such file
// and answers with the hash of the key space at the current revision.
func (s *maintenanceServer) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	resp, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	h, err := resp.View.HashKV(0)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.HashResponse{Header: withRevision(resp.Header, int64(resp.View.Rev())), Hash: h.Hash}, nil
}

// MoveLeader hands leadership to another member; only the leader can. It
// answers, as etcd does, with an empty response: no header (the term in
// one would be the old leader's).
func (s *maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if _, err := do[*pb.MoveLeaderResponse](ctx, s.b, core.Request{MoveLeader: r}); err != nil {
		return nil, err
	}
	return &pb.MoveLeaderResponse{}, nil
}
