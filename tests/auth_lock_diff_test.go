package tests

// The Lock and Election services with auth on, in the auth scenario
// (auth_diff_test.go): each is a series of KV, Lease and Watch calls made
// as the caller, so a user gets exactly the permissions those calls
// check. alice may read [/pub/, /pub0) and read-write the key /rw only.

import (
	"context"
	"io"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	epb "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
)

// authLockSteps lock and campaign as alice where she may only read, and
// where she may do nothing, and read a lock root holds.
func authLockSteps() []authStep {
	return []authStep{
		{"alice: Lock /pub/l (read only)", as("alice", lockName("/pub/l"))},
		{"alice: Lock /other (no permission)", as("alice", lockName("/other"))},
		{"alice: Campaign /pub/l (read only)", as("alice", campaignName("/pub/l"))},
		{"alice: Leader /pub/l, none", as("alice", leaderOf("/pub/l"))},
		{"alice: Leader /other", as("alice", leaderOf("/other"))},
		{"alice: Unlock /pub/x", as("alice", unlockKey("/pub/x"))},
		{"alice: Observe /other", as("alice", observeFirst("/other"))},
		{"root: Lock /pub/l", as("root", lockName("/pub/l"))},
		{"alice: Leader /pub/l, root's lock", as("alice", leaderOf("/pub/l"))},
		{"alice: Observe /pub/l, root's lock", as("alice", observeFirst("/pub/l"))},
		{"alice: Resign root's lock key", as("alice", resignFirst("/pub/l"))},
		{"root: Resign its lock key", as("root", resignFirst("/pub/l"))},
		{"alice: Leader /pub/l after root's resign", as("alice", leaderOf("/pub/l"))},
	}
}

// lockName locks name on a new lease (etcd grants it: a lease needs only
// a user); the key, name/lease in hex, is shown without the lease.
func lockName(name string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := v3lockpb.NewLockClient(c.ActiveConnection()).Lock(ctx, &v3lockpb.LockRequest{Name: []byte(name)})
		return res(r, err, func(r *v3lockpb.LockResponse) string { return "key " + withoutLease(r.Key) })
	}
}

func campaignName(name string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := epb.NewElectionClient(c.ActiveConnection()).Campaign(ctx, &epb.CampaignRequest{Name: []byte(name), Value: []byte("v")})
		return res(r, err, func(r *epb.CampaignResponse) string { return "leader " + withoutLease(r.Leader.GetKey()) })
	}
}

func leaderOf(name string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := epb.NewElectionClient(c.ActiveConnection()).Leader(ctx, &epb.LeaderRequest{Name: []byte(name)})
		return res(r, err, func(r *epb.LeaderResponse) string { return "leader " + withoutLease(r.Kv.GetKey()) })
	}
}

func unlockKey(key string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := v3lockpb.NewLockClient(c.ActiveConnection()).Unlock(ctx, &v3lockpb.UnlockRequest{Key: []byte(key)})
		return res(r, err, func(*v3lockpb.UnlockResponse) string { return "ok" })
	}
}

// observeFirst opens an Observe stream and shows its first answer: a
// leader, or how the stream ended.
func observeFirst(name string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		st, err := epb.NewElectionClient(c.ActiveConnection()).Observe(ctx, &epb.LeaderRequest{Name: []byte(name)})
		if err != nil {
			return errStr(err)
		}
		r, err := st.Recv()
		if err == io.EOF {
			return "stream ended"
		}
		return res(r, err, func(r *epb.LeaderResponse) string { return "leader " + withoutLease(r.Kv.GetKey()) })
	}
}

// resignFirst resigns, as the caller, the leadership of name's first key
// in line, which the caller reads with root's help: Resign's permission is
// the delete's.
func resignFirst(name string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		g, err := c.Get(ctx, name+"/", clientv3.WithFirstCreate()...)
		if err != nil {
			return "get: " + errStr(err)
		}
		if len(g.Kvs) == 0 {
			return "no key in line"
		}
		kv := g.Kvs[0]
		leader := &epb.LeaderKey{Name: []byte(name), Key: kv.Key, Rev: kv.CreateRevision, Lease: kv.Lease}
		r, err := epb.NewElectionClient(c.ActiveConnection()).Resign(ctx, &epb.ResignRequest{Leader: leader})
		return res(r, err, func(*epb.ResignResponse) string { return "ok" })
	}
}

// withoutLease shows a lock or election key, name/lease in hex, without
// its lease, which differs between the servers.
func withoutLease(key []byte) string {
	if i := strings.LastIndexByte(string(key), '/'); i >= 0 {
		return string(key[:i+1]) + "<lease>"
	}
	return string(key)
}
