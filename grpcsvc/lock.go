package grpcsvc

import (
	"context"
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
)

// Lock and Election are etcd's: thin layers over KV, Lease and Watch.
// etcd builds them with clientv3's concurrency package on a client that
// calls its own services in process; detcd makes the same calls, in the
// same order, straight to its KV and Lease services (so each gets the
// caller's credentials and the auth checks a KV call gets) and to
// Backend.OpenWatch, whose waits are Backend.NewSignal's: a handler that
// waits for a key's deletion is a goroutine in the server and a task the
// simulator resumes in virtual time, never a goroutine of its own.
//
// The rules, as etcd 3.7's concurrency package has them: a lock or
// election name's keys are name + "/" + the holder's lease id in hex, put
// under that lease if no such key was created yet; the holder is the key
// with the lowest create revision under name + "/"; a waiter waits for
// the deletion of every key there with a lower create revision than its
// own, one at a time, newest first, each through a watch from the
// revision of the read that found it.
//
// Their errors are the client's, as etcd returns them: clientv3's error
// for what the KV, Lease and Watch calls answered, and plain errors of
// the concurrency package's, which gRPC sends with code Unknown and
// etcd's message (clientErr).

// errMissingLeaderKey is etcd's answer to a Proclaim or Resign without a
// leader key.
var errMissingLeaderKey = errors.New(`"leader" field must be provided`)

// The concurrency package's errors, as etcd's Lock and Election answer
// with them.
var (
	errElectionNotLeader = errors.New("election: not leader")
	errElectionNoLeader  = errors.New("election: no leader")
	errSessionExpired    = errors.New("mutex: session is expired")
)

// sessionTTL is the TTL, in seconds, of the lease a Lock or Campaign
// without one grants (concurrency's default session TTL); nobody keeps it
// alive.
const sessionTTL = 60

// noLease is what Leader and Observe open their session with in etcd: a
// lease id that is never granted, so that no lease is created for a read.
const noLease = -1

// concurrency is what Lock and Election share: the member's KV and Lease
// services and its Backend, which they call as clientv3's concurrency
// package calls its client.
type concurrency struct {
	b     Backend
	kv    *kvServer
	lease *LeaseService
}

// planted reports whether the member plants the bug name (detcdbugs
// builds only; a Backend that can plant bugs says which).
func (c *concurrency) planted(name string) bool {
	p, ok := c.b.(interface{ PlantedBug() string })
	return ok && core.PlantedBugsAvailable() && p.PlantedBug() == name
}

// session is the lease a session on lease works under, as concurrency's
// NewSession makes it: lease itself, or, for 0, a new lease of
// sessionTTL. etcd's session then starts keeping the lease alive and at
// once stops (Orphan): whether a keep-alive goes out in between is a race
// of clientv3's goroutines, which detcd settles as one of its outcomes,
// none.
func (c *concurrency) session(ctx context.Context, lease int64) (int64, error) {
	if lease != 0 {
		return lease, nil
	}
	g, err := c.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: sessionTTL})
	if err != nil {
		return 0, err
	}
	return g.ID, nil
}

// sessionKey is a session's key under pfx: pfx and the lease id in hex.
func sessionKey(pfx string, lease int64) string { return fmt.Sprintf("%s%x", pfx, lease) }

// prefixEnd is the end of the range of keys under pfx, as clientv3's
// WithPrefix makes it.
func prefixEnd(pfx string) []byte {
	end := []byte(pfx)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// firstCreate reads the key under pfx with the lowest create revision
// (clientv3.WithFirstCreate).
func firstCreate(pfx string) *pb.RangeRequest {
	return &pb.RangeRequest{Key: []byte(pfx), RangeEnd: prefixEnd(pfx), Limit: 1,
		SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_CREATE}
}

// createdAt compares key's create revision with rev (0: the key does
// not exist).
func createdAt(key string, rev int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_CREATE, Result: pb.Compare_EQUAL,
		TargetUnion: &pb.Compare_CreateRevision{CreateRevision: rev}}
}

func opPut(key string, value []byte, lease int64) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: value, Lease: lease}}}
}

func opRange(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}

func opDelete(key string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(key)}}}
}

// rangeOf is a transaction's i-th response as a range's keys.
func rangeOf(t *pb.TxnResponse, i int) []*mvccpb.KeyValue {
	if i >= len(t.Responses) {
		return nil
	}
	return t.Responses[i].GetResponseRange().GetKvs()
}

// waitDeletes waits until no key under pfx has a create revision at or
// below maxCreateRev: it reads the newest such key and waits for its
// deletion, and again, until none is left.
func (c *concurrency) waitDeletes(ctx context.Context, pfx string, maxCreateRev int64) error {
	r := &pb.RangeRequest{Key: []byte(pfx), RangeEnd: prefixEnd(pfx), Limit: 1,
		SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_CREATE, MaxCreateRevision: maxCreateRev}
	for {
		g, err := c.kv.Range(ctx, proto.CloneOf(r))
		if err != nil {
			return err
		}
		if len(g.Kvs) == 0 {
			return nil
		}
		if err := c.waitDelete(ctx, g.Kvs[0].Key, g.Header.Revision); err != nil {
			return err
		}
	}
}

// waitDelete waits, through a watch from rev, for key's deletion.
func (c *concurrency) waitDelete(ctx context.Context, key []byte, rev int64) error {
	w, err := c.watch(ctx, key, nil, rev)
	if err != nil {
		return err
	}
	defer w.close()
	for {
		evs, _, err := w.next(ctx)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if ev.Type == mvccpb.DELETE {
				return nil
			}
		}
	}
}

// release deletes key, as the concurrency package cleans up after a wait
// that failed: with its client's own context, which carries no
// credentials and no deadline, so that a caller that went away still
// leaves the line (with auth on the delete is refused, as etcd's is, and
// the key waits for its lease).
func (c *concurrency) release(key string) {
	_, _ = c.kv.DeleteRange(context.Background(), &pb.DeleteRangeRequest{Key: []byte(key)})
}

// keyWatch is one watcher on a watch stream of the member's own: what
// clientv3's Watch gives the concurrency package.
type keyWatch struct {
	ws WatchStream
	// pending are responses taken from the stream and not yet read.
	pending []*pb.WatchResponse
}

// watch starts watching [key, end) from rev, as the caller: a watch the
// caller may not read is refused with the Watch service's reason.
func (c *concurrency) watch(ctx context.Context, key, end []byte, rev int64) (*keyWatch, error) {
	checked := key
	if len(checked) == 0 {
		checked = []byte{0}
	}
	if err := checkRead(ctx, c.b, checked, end); err != nil {
		return nil, watchDeniedReason(err)
	}
	ws, err := c.b.OpenWatch(ctx)
	if err != nil {
		return nil, toGRPC(err)
	}
	create := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: key, RangeEnd: end, StartRevision: rev}}}
	if err := ws.Request(ctx, create); err != nil {
		ws.Close()
		return nil, toGRPC(err)
	}
	return &keyWatch{ws: ws}, nil
}

// next waits for the watcher's next events and the header they came
// with; a watcher canceled (compacted, say) ends with clientv3's error
// for it.
func (w *keyWatch) next(ctx context.Context) ([]*mvccpb.Event, *pb.ResponseHeader, error) {
	for {
		for len(w.pending) > 0 {
			r := w.pending[0]
			w.pending = w.pending[1:]
			switch {
			case r.CompactRevision != 0:
				return nil, nil, rpctypes.ErrGRPCCompacted
			case r.Canceled && r.CancelReason != "":
				return nil, nil, status.Error(codes.FailedPrecondition, etcdCancelReason(r.CancelReason))
			case r.Canceled:
				return nil, nil, rpctypes.ErrGRPCFutureRev
			case len(r.Events) > 0:
				return r.Events, r.Header, nil
			}
			// A creation or a progress notice: nothing for the caller.
		}
		outs, err := w.ws.Next(ctx)
		if err != nil {
			return nil, nil, toGRPC(err)
		}
		credit := 0
		for _, o := range outs {
			w.pending = append(w.pending, o.Resp)
			credit += o.Bytes
		}
		if err := w.ws.Credit(ctx, credit); err != nil {
			return nil, nil, toGRPC(err)
		}
	}
}

func (w *keyWatch) close() { w.ws.Close() }

// clientErr is err as etcd's Lock and Election return it, through
// clientv3: an error of etcd's (rpctypes) goes out with code Unknown and
// its message, a canceled call with its context's error; what the
// concurrency package says itself (errors.New) is Unknown with its text.
func clientErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var etcdErr rpctypes.EtcdError
	if e := rpctypes.Error(err); errors.As(e, &etcdErr) {
		return status.Error(codes.Unknown, etcdErr.Error())
	}
	st, ok := status.FromError(err)
	if !ok {
		return status.Error(codes.Unknown, err.Error())
	}
	if (st.Code() == codes.Canceled || st.Code() == codes.DeadlineExceeded) && ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return err
}

type lockServer struct {
	v3lockpb.UnimplementedLockServer
	c *concurrency
}

// Lock waits until the caller holds the lock name, under its lease.
func (s *lockServer) Lock(ctx context.Context, r *v3lockpb.LockRequest) (*v3lockpb.LockResponse, error) {
	resp, err := s.lock(ctx, r)
	return resp, clientErr(ctx, err)
}

// lock is concurrency's Mutex.Lock: put the caller's key in line unless
// it is there, and hold the lock at once if it is first; else wait for
// the keys before it, then make sure it is still there.
func (s *lockServer) lock(ctx context.Context, r *v3lockpb.LockRequest) (*v3lockpb.LockResponse, error) {
	c := s.c
	lease, err := c.session(ctx, r.Lease)
	if err != nil {
		return nil, err
	}
	pfx := string(r.Name) + "/"
	key := sessionKey(pfx, lease)
	t, err := c.kv.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{createdAt(key, 0)},
		Success: []*pb.RequestOp{opPut(key, nil, lease), opRange(firstCreate(pfx))},
		Failure: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: []byte(key)}), opRange(firstCreate(pfx))},
	})
	if err != nil {
		return nil, err
	}
	myRev := t.Header.Revision
	if !t.Succeeded {
		myRev = rangeOf(t, 0)[0].CreateRevision
	}
	if owner := rangeOf(t, 1); len(owner) == 0 || owner[0].CreateRevision == myRev || c.planted(core.BugLockSkipsWait) {
		return &v3lockpb.LockResponse{Header: t.Header, Key: []byte(key)}, nil
	}
	if err := c.waitDeletes(ctx, pfx, myRev-1); err != nil {
		c.release(key)
		return nil, err
	}
	// The session's lease may have ended meanwhile, and its key with it.
	g, err := c.kv.Range(ctx, &pb.RangeRequest{Key: []byte(key)})
	if err != nil {
		c.release(key)
		return nil, err
	}
	if len(g.Kvs) == 0 {
		return nil, errSessionExpired
	}
	return &v3lockpb.LockResponse{Header: g.Header, Key: []byte(key)}, nil
}

// Unlock deletes the key Lock returned.
func (s *lockServer) Unlock(ctx context.Context, r *v3lockpb.UnlockRequest) (*v3lockpb.UnlockResponse, error) {
	resp, err := s.c.kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: r.Key})
	if err != nil {
		return nil, clientErr(ctx, err)
	}
	return &v3lockpb.UnlockResponse{Header: resp.Header}, nil
}

type electionServer struct {
	v3electionpb.UnimplementedElectionServer
	c *concurrency
}

// Campaign waits until the caller leads the election name.
func (s *electionServer) Campaign(ctx context.Context, r *v3electionpb.CampaignRequest) (*v3electionpb.CampaignResponse, error) {
	resp, err := s.campaign(ctx, r)
	return resp, clientErr(ctx, err)
}

// campaign is concurrency's Election.Campaign: put the caller's key in
// line (or take the one there, proclaiming the value if it differs), then
// wait for the keys before it. Unlike Lock it does not check that its
// key outlived the wait.
func (s *electionServer) campaign(ctx context.Context, r *v3electionpb.CampaignRequest) (*v3electionpb.CampaignResponse, error) {
	c := s.c
	lease, err := c.session(ctx, r.Lease)
	if err != nil {
		return nil, err
	}
	pfx := string(r.Name) + "/"
	key := sessionKey(pfx, lease)
	t, err := c.kv.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{createdAt(key, 0)},
		Success: []*pb.RequestOp{opPut(key, r.Value, lease)},
		Failure: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: []byte(key)})},
	})
	if err != nil {
		return nil, err
	}
	rev := t.Header.Revision
	if !t.Succeeded {
		kv := rangeOf(t, 0)[0]
		rev = kv.CreateRevision
		if string(kv.Value) != string(r.Value) {
			led, err := c.proclaim(ctx, key, rev, lease, r.Value)
			if err == nil && !led {
				// etcd's Election forgets its key here, and the
				// resign that follows deletes nothing.
				return nil, errElectionNotLeader
			}
			if err != nil {
				_, _ = c.resign(ctx, key, rev)
				return nil, err
			}
		}
	}
	if err := c.waitDeletes(ctx, pfx, rev-1); err != nil {
		if ctx.Err() != nil {
			_, _ = c.resign(context.Background(), key, rev)
		}
		return nil, err
	}
	return &v3electionpb.CampaignResponse{Header: t.Header, Leader: &v3electionpb.LeaderKey{
		Name: r.Name, Key: []byte(key), Rev: rev, Lease: lease,
	}}, nil
}

// proclaim puts value on the leader key if it is still the one created
// at rev; led says whether it was.
func (c *concurrency) proclaim(ctx context.Context, key string, rev, lease int64, value []byte) (led bool, err error) {
	t, err := c.kv.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{createdAt(key, rev)},
		Success: []*pb.RequestOp{opPut(key, value, lease)},
	})
	if err != nil {
		return false, err
	}
	return t.Succeeded, nil
}

// resign deletes the leader key if it is still the one created at rev.
func (c *concurrency) resign(ctx context.Context, key string, rev int64) (*pb.TxnResponse, error) {
	return c.kv.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{createdAt(key, rev)},
		Success: []*pb.RequestOp{opDelete(key)},
	})
}

// Proclaim sets the value of an election the caller leads. As etcd's, it
// opens a session on the leader key's lease first: a leader key with no
// lease gets a new one, which the key is then put under.
func (s *electionServer) Proclaim(ctx context.Context, r *v3electionpb.ProclaimRequest) (*v3electionpb.ProclaimResponse, error) {
	if r.Leader == nil {
		return nil, clientErr(ctx, errMissingLeaderKey)
	}
	lease, err := s.c.session(ctx, r.Leader.Lease)
	if err != nil {
		return nil, clientErr(ctx, err)
	}
	t, err := s.c.kv.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{createdAt(string(r.Leader.Key), r.Leader.Rev)},
		Success: []*pb.RequestOp{opPut(string(r.Leader.Key), r.Value, lease)},
	})
	if err != nil {
		return nil, clientErr(ctx, err)
	}
	if !t.Succeeded {
		return nil, clientErr(ctx, errElectionNotLeader)
	}
	return &v3electionpb.ProclaimResponse{Header: t.Header}, nil
}

// Resign gives up the leadership of an election: it deletes the leader
// key if it is still the one created at the leader's revision, and
// answers alike whether it was.
func (s *electionServer) Resign(ctx context.Context, r *v3electionpb.ResignRequest) (*v3electionpb.ResignResponse, error) {
	if r.Leader == nil {
		return nil, clientErr(ctx, errMissingLeaderKey)
	}
	if _, err := s.c.session(ctx, r.Leader.Lease); err != nil {
		return nil, clientErr(ctx, err)
	}
	t, err := s.c.resign(ctx, string(r.Leader.Key), r.Leader.Rev)
	if err != nil {
		return nil, clientErr(ctx, err)
	}
	return &v3electionpb.ResignResponse{Header: t.Header}, nil
}

// Leader is the election's current leader key, or "election: no leader".
func (s *electionServer) Leader(ctx context.Context, r *v3electionpb.LeaderRequest) (*v3electionpb.LeaderResponse, error) {
	g, err := s.c.kv.Range(ctx, firstCreate(string(r.Name)+"/"))
	if err != nil {
		return nil, clientErr(ctx, err)
	}
	if len(g.Kvs) == 0 {
		return nil, clientErr(ctx, errElectionNoLeader)
	}
	return &v3electionpb.LeaderResponse{Header: g.Header, Kv: g.Kvs[0]}, nil
}

// Observe streams the election's leader keys as they change, until the
// client goes away: concurrency's Election.Observe, its steps taken in
// the handler itself rather than on a goroutine feeding a channel. When
// a step fails (a read refused, a watcher compacted) the observer ends,
// and with it the stream, cleanly, as etcd's does.
func (s *electionServer) Observe(r *v3electionpb.LeaderRequest, stream v3electionpb.Election_ObserveServer) error {
	ctx := stream.Context()
	err := s.observe(ctx, string(r.Name)+"/", stream.Send)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, errObserverStopped) {
		return nil
	}
	return err
}

// errObserverStopped: the observer met an error of its own, which ends
// the stream cleanly.
var errObserverStopped = errors.New("observer stopped")

// observe sends the leader under pfx, then each new value of its key
// until it is deleted, and starts over; with no leader it waits for the
// first key put under pfx. It returns send's error, or
// errObserverStopped.
func (s *electionServer) observe(ctx context.Context, pfx string, send func(*v3electionpb.LeaderResponse) error) error {
	c := s.c
	for {
		g, err := c.kv.Range(ctx, firstCreate(pfx))
		if err != nil {
			return errObserverStopped
		}
		hdr, kv := g.Header, (*mvccpb.KeyValue)(nil)
		if len(g.Kvs) > 0 {
			kv = g.Kvs[0]
		} else if hdr, kv, err = c.firstPut(ctx, pfx, g.Header.Revision); err != nil {
			return errObserverStopped
		}
		if err := send(&v3electionpb.LeaderResponse{Header: hdr, Kv: kv}); err != nil {
			return err
		}
		if err := c.followLeader(ctx, kv.Key, hdr.Revision+1, send); err != nil {
			return err
		}
	}
}

// firstPut waits for the first key put under pfx from rev: the header
// says the put's revision.
func (c *concurrency) firstPut(ctx context.Context, pfx string, rev int64) (*pb.ResponseHeader, *mvccpb.KeyValue, error) {
	w, err := c.watch(ctx, []byte(pfx), prefixEnd(pfx), rev)
	if err != nil {
		return nil, nil, err
	}
	defer w.close()
	for {
		evs, h, err := w.next(ctx)
		if err != nil {
			return nil, nil, err
		}
		// Only puts: a delete would make the observer start over at once.
		for _, ev := range evs {
			if ev.Type == mvccpb.PUT {
				hdr := proto.CloneOf(h)
				hdr.Revision = ev.Kv.ModRevision
				return hdr, ev.Kv, nil
			}
		}
	}
}

// followLeader sends each new value of the leader key from rev, until
// the key is deleted (nil) or the watcher ends (errObserverStopped).
func (c *concurrency) followLeader(ctx context.Context, key []byte, rev int64, send func(*v3electionpb.LeaderResponse) error) error {
	w, err := c.watch(ctx, key, nil, rev)
	if err != nil {
		return errObserverStopped
	}
	defer w.close()
	for {
		evs, h, err := w.next(ctx)
		if err != nil {
			return errObserverStopped
		}
		for _, ev := range evs {
			if ev.Type == mvccpb.DELETE {
				return nil
			}
			if err := send(&v3electionpb.LeaderResponse{Header: h, Kv: ev.Kv}); err != nil {
				return err
			}
		}
	}
}
