package grpcsvc

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// LeaseService is etcd's Lease service.
type LeaseService struct {
	pb.UnimplementedLeaseServer
	b Backend
}

func (s *LeaseService) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	return do[*pb.LeaseGrantResponse](ctx, s.b, core.Request{LeaseGrant: r})
}

func (s *LeaseService) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	return do[*pb.LeaseRevokeResponse](ctx, s.b, core.Request{LeaseRevoke: r})
}

func (s *LeaseService) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	return do[*pb.LeaseTimeToLiveResponse](ctx, s.b, core.Request{LeaseTimeToLive: r})
}

func (s *LeaseService) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	return do[*pb.LeaseLeasesResponse](ctx, s.b, core.Request{LeaseLeases: true})
}

// LeaseKeepAlive renews leases as the stream asks, one at a time, as etcd
// does.
func (s *LeaseService) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	type recv struct {
		req *pb.LeaseKeepAliveRequest
		err error
	}
	// Receiving on its own goroutine lets the stream end as soon as its
	// context does (the guard ends streams that require a leader), not at
	// the client's next keep-alive.
	reqs := make(chan recv)
	go func() {
		for {
			req, err := stream.Recv()
			select {
			case reqs <- recv{req, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		var r recv
		select {
		case r = <-reqs:
		case <-ctx.Done():
			return ctx.Err()
		}
		req, err := r.req, r.err
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.KeepAliveOnce(ctx, req)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// KeepAliveOnce renews a lease as one request of a keep-alive stream: the
// simulator's keep-alive streams call it as LeaseKeepAlive does.
func (s *LeaseService) KeepAliveOnce(ctx context.Context, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
	return do[*pb.LeaseKeepAliveResponse](ctx, s.b, core.Request{LeaseKeepAlive: req})
}
