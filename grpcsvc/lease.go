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
// does: plumbing around a KeepAliveSession, whose steps decide
// everything. The handler has to end when its context does (the client
// left, or the guard ended a stream that requires a leader), not at the
// client's next keep-alive. A Recv waiting for that keep-alive sees the
// stream's own end, not the guard's: where the guard may end the context
// apart from the stream (StreamEndsApart), the steps (receive, renew,
// answer) run apart from the handler, as etcd's always do (Backend.Go: a
// goroutine in the server, a task in the simulator, which runs this
// handler on its in-process streams), and the handler waits for them to
// end the stream or for its context to end, whichever comes first.
// Elsewhere (clientv3's KeepAliveOnce: a stream per keep-alive) nothing
// but the stream ends the context, and the handler runs the steps
// itself: no goroutine, and no signal, per stream.
func (s *LeaseService) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	sess := s.OpenKeepAlive(stream.Send)
	if !StreamEndsApart(ctx) {
		for {
			req, rerr := stream.Recv()
			if done, err := sess.Step(ctx, req, rerr); done {
				return err
			}
		}
	}
	ended := s.b.NewSignal()
	// err is written before ended fires, and read only once it has.
	var err error
	s.b.Go(func() {
		for {
			req, rerr := stream.Recv()
			if done, serr := sess.Step(ctx, req, rerr); done {
				err = serr
				ended.Fire()
				return
			}
		}
	})
	if werr := ended.Wait(ctx); werr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return toGRPC(werr)
	}
	return err
}

// KeepAliveSession is one keep-alive stream's server side, step by step:
// the gRPC handler and the simulator's keep-alive streams run the same
// steps.
type KeepAliveSession struct {
	s    *LeaseService
	send func(*pb.LeaseKeepAliveResponse) error
}

// OpenKeepAlive starts a session whose answers go out through send.
func (s *LeaseService) OpenKeepAlive(send func(*pb.LeaseKeepAliveResponse) error) *KeepAliveSession {
	return &KeepAliveSession{s: s, send: send}
}

// Step takes what the stream's Recv gave (a request, or recvErr) and
// renews the lease the request names, answering through send. done says
// the stream ends, with err: a client done sending (io.EOF) ends it
// cleanly, as etcd's; a failed receive, renewal or send with that error.
// etcd answers a lease it does not know with TTL 0 (core does so), and
// the renewal happens on the leader only (core forwards it there).
func (k *KeepAliveSession) Step(ctx context.Context, req *pb.LeaseKeepAliveRequest, recvErr error) (done bool, err error) {
	switch {
	case errors.Is(recvErr, io.EOF):
		return true, nil
	case recvErr != nil:
		return true, recvErr
	}
	resp, err := do[*pb.LeaseKeepAliveResponse](ctx, k.s.b, core.Request{LeaseKeepAlive: req})
	if err == nil {
		err = k.send(resp)
	}
	return err != nil, err
}
