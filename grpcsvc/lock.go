package grpcsvc

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc/metadata"
)

// Lock and Election are etcd's: thin layers over KV, Lease and Watch,
// built with clientv3's concurrency package on a client that calls this
// member in process (inProcessClient). Their errors are the client's, as
// etcd returns them: a plain error, which gRPC sends with code Unknown and
// etcd's message.

// errMissingLeaderKey is etcd's answer to a Proclaim or Resign without a
// leader key.
var errMissingLeaderKey = errors.New(`"leader" field must be provided`)

// orphanSession is a session on lease (0: a new lease with
// concurrency's default TTL) whose lease nobody keeps alive: the lease
// lives as long as the client keeps it alive itself.
func orphanSession(ctx context.Context, c *clientv3.Client, lease int64) (*concurrency.Session, error) {
	s, err := concurrency.NewSession(c, concurrency.WithLease(clientv3.LeaseID(lease)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	s.Orphan()
	return s, nil
}

// callerKey is outgoing metadata that only clientv3 sees (the
// in-process client hands contexts to the services as they are): clientv3
// shares one watch stream among watches whose contexts carry the same
// outgoing metadata, and that stream runs as the caller whose context
// opened it. Naming the caller there gives each caller streams of its
// own, so that no watch runs with another caller's token or certificate.
const callerKey = "detcd-caller"

// asCaller marks ctx with its caller's identity for clientv3 (see
// callerKey); a caller without credentials is left as is. Every handler
// that may watch starts with it (Unlock only deletes).
func asCaller(ctx context.Context) context.Context {
	if tok, _ := TokenFrom(ctx); tok != "" {
		return metadata.AppendToOutgoingContext(ctx, callerKey, "token:"+tok)
	}
	if cn := CertUserFrom(ctx); cn != "" {
		return metadata.AppendToOutgoingContext(ctx, callerKey, "cert:"+cn)
	}
	return ctx
}

// noLease is what Leader and Observe open their session with: a lease id
// that is never granted, so that no lease is created for a read.
const noLease = -1

type lockServer struct {
	v3lockpb.UnimplementedLockServer
	c *clientv3.Client
}

// Lock waits until the caller holds the lock name, under its lease.
func (s *lockServer) Lock(ctx context.Context, r *v3lockpb.LockRequest) (*v3lockpb.LockResponse, error) {
	ctx = asCaller(ctx)
	sess, err := orphanSession(ctx, s.c, r.Lease)
	if err != nil {
		return nil, err
	}
	m := concurrency.NewMutex(sess, string(r.Name))
	if err := m.Lock(ctx); err != nil {
		return nil, err
	}
	return &v3lockpb.LockResponse{Header: m.Header(), Key: []byte(m.Key())}, nil
}

// Unlock deletes the key Lock returned.
func (s *lockServer) Unlock(ctx context.Context, r *v3lockpb.UnlockRequest) (*v3lockpb.UnlockResponse, error) {
	resp, err := s.c.Delete(ctx, string(r.Key))
	if err != nil {
		return nil, err
	}
	return &v3lockpb.UnlockResponse{Header: resp.Header}, nil
}

type electionServer struct {
	v3electionpb.UnimplementedElectionServer
	c *clientv3.Client
}

// Campaign waits until the caller leads the election name.
func (s *electionServer) Campaign(ctx context.Context, r *v3electionpb.CampaignRequest) (*v3electionpb.CampaignResponse, error) {
	ctx = asCaller(ctx)
	sess, err := orphanSession(ctx, s.c, r.Lease)
	if err != nil {
		return nil, err
	}
	e := concurrency.NewElection(sess, string(r.Name))
	if err := e.Campaign(ctx, string(r.Value)); err != nil {
		return nil, err
	}
	return &v3electionpb.CampaignResponse{Header: e.Header(), Leader: &v3electionpb.LeaderKey{
		Name: r.Name, Key: []byte(e.Key()), Rev: e.Rev(), Lease: int64(sess.Lease()),
	}}, nil
}

// resumed is the election a leader key names, or errMissingLeaderKey.
func (s *electionServer) resumed(ctx context.Context, l *v3electionpb.LeaderKey) (*concurrency.Election, error) {
	if l == nil {
		return nil, errMissingLeaderKey
	}
	sess, err := orphanSession(ctx, s.c, l.Lease)
	if err != nil {
		return nil, err
	}
	return concurrency.ResumeElection(sess, string(l.Name), string(l.Key), l.Rev), nil
}

// Proclaim sets the value of an election the caller leads.
func (s *electionServer) Proclaim(ctx context.Context, r *v3electionpb.ProclaimRequest) (*v3electionpb.ProclaimResponse, error) {
	ctx = asCaller(ctx)
	e, err := s.resumed(ctx, r.Leader)
	if err != nil {
		return nil, err
	}
	if err := e.Proclaim(ctx, string(r.Value)); err != nil {
		return nil, err
	}
	return &v3electionpb.ProclaimResponse{Header: e.Header()}, nil
}

// Resign gives up the leadership of an election.
func (s *electionServer) Resign(ctx context.Context, r *v3electionpb.ResignRequest) (*v3electionpb.ResignResponse, error) {
	ctx = asCaller(ctx)
	e, err := s.resumed(ctx, r.Leader)
	if err != nil {
		return nil, err
	}
	if err := e.Resign(ctx); err != nil {
		return nil, err
	}
	return &v3electionpb.ResignResponse{Header: e.Header()}, nil
}

// Leader is the election's current leader key, or "election: no leader".
func (s *electionServer) Leader(ctx context.Context, r *v3electionpb.LeaderRequest) (*v3electionpb.LeaderResponse, error) {
	ctx = asCaller(ctx)
	sess, err := orphanSession(ctx, s.c, noLease)
	if err != nil {
		return nil, err
	}
	resp, err := concurrency.NewElection(sess, string(r.Name)).Leader(ctx)
	if err != nil {
		return nil, err
	}
	return &v3electionpb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}, nil
}

// Observe streams the election's leader keys as they change, until the
// client goes away.
func (s *electionServer) Observe(r *v3electionpb.LeaderRequest, stream v3electionpb.Election_ObserveServer) error {
	ctx := asCaller(stream.Context())
	sess, err := orphanSession(ctx, s.c, noLease)
	if err != nil {
		return err
	}
	leaders := concurrency.NewElection(sess, string(r.Name)).Observe(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok := <-leaders:
			if !ok {
				// The observer stopped: as etcd, the stream ends cleanly.
				return nil
			}
			if err := stream.Send(&v3electionpb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}); err != nil {
				return err
			}
		}
	}
}
