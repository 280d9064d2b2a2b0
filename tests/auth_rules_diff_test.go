package tests

// Steps of TestAuthDiff's scenario for the finer rules of etcd's auth:
// who may renew, revoke, look at and list leases; permission checks on
// ranges whose end sorts before their key; simple tokens across changes
// of the auth store.

import (
	"context"
	"fmt"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// unknownLease is a lease id no step grants.
const unknownLease = clientv3.LeaseID(0x1234)

// authLeaseRuleSteps: bob has no roles, alice may write /rw only, root
// anything. Renewing or revoking a lease needs write permission on each
// key attached to it, looking at its keys or listing leases read
// permission on each key attached; granting, and looking at a lease
// without its keys, only a user.
func authLeaseRuleSteps() []authStep {
	return []authStep{
		{"root: UserAdd bob", as("root", userAdd("bob", "bobpw"))},
		{"open bob (no roles)", open("bob", "bob", "bobpw")},
		{"root: LeaseGrant L1 + Put /other with it", grantWithKey("root", "L1", "/other")},
		{"bob: LeaseKeepAliveOnce L1", keepAliveOnce("bob", "L1")},
		{"alice: LeaseKeepAliveOnce L1", keepAliveOnce("alice", "L1")},
		{"root: LeaseKeepAliveOnce L1", keepAliveOnce("root", "L1")},
		{"bob: LeaseTimeToLive L1", timeToLive("bob", "L1", false)},
		{"bob: LeaseTimeToLive L1 with keys", timeToLive("bob", "L1", true)},
		{"alice: LeaseTimeToLive L1 with keys", timeToLive("alice", "L1", true)},
		{"root: LeaseTimeToLive L1 with keys", timeToLive("root", "L1", true)},
		{"bob: LeaseLeases", leaseList("bob")},
		{"alice: LeaseLeases", leaseList("alice")},
		{"root: LeaseLeases", leaseList("root")},
		{"bob: LeaseRevoke L1", revokeLease("bob", "L1")},
		{"alice: LeaseRevoke L1", revokeLease("alice", "L1")},
		{"bob: LeaseGrant L2", grantWithKey("bob", "L2", "")},
		{"bob: LeaseKeepAliveOnce L2 (no keys)", keepAliveOnce("bob", "L2")},
		{"bob: LeaseTimeToLive L2 with keys", timeToLive("bob", "L2", true)},
		{"alice: LeaseGrant L3 + Put /rw with it", grantWithKey("alice", "L3", "/rw")},
		{"alice: LeaseKeepAliveOnce L3", keepAliveOnce("alice", "L3")},
		{"alice: LeaseTimeToLive L3 with keys", timeToLive("alice", "L3", true)},
		{"bob: LeaseKeepAliveOnce L3", keepAliveOnce("bob", "L3")},
		{"root: LeaseRevoke L1", revokeLease("root", "L1")},
		{"alice: LeaseLeases (only /rw attached)", leaseList("alice")},
		{"bob: LeaseLeases (only /rw attached)", leaseList("bob")},
		{"alice: LeaseRevoke L3", revokeLease("alice", "L3")},
		{"bob: LeaseLeases (no keys attached)", leaseList("bob")},
		{"bob: LeaseKeepAliveOnce an unknown lease", keepAliveOnce("bob", "unknown")},
		{"bob: LeaseTimeToLive an unknown lease with keys", timeToLive("bob", "unknown", true)},
		{"bob: LeaseRevoke an unknown lease", revokeLease("bob", "unknown")},
		{"bob: LeaseRevoke L2", revokeLease("bob", "L2")},
		{"anon: LeaseGrant", as("anon", grantOnly)},
		{"anon: LeaseKeepAliveOnce an unknown lease", keepAliveOnce("anon", "unknown")},
		{"anon: LeaseTimeToLive an unknown lease", timeToLive("anon", "unknown", false)},
		{"anon: LeaseLeases", leaseList("anon")},
	}
}

// authRangeEndSteps: a range whose end sorts before (or at) its key is
// empty, but the permission on its key is checked all the same; "\x00"
// is the end of the key space. alice may read /aaa and [/pub/, /pub0),
// and write /rw.
func authRangeEndSteps() []authStep {
	return []authStep{
		{"alice: Get [/other, /aaa)", as("alice", get("/other", clientv3.WithRange("/aaa")))},
		{"alice: Get [/other, /other)", as("alice", get("/other", clientv3.WithRange("/other")))},
		{"alice: Get [/pub/a, /aaa)", as("alice", get("/pub/a", clientv3.WithRange("/aaa")))},
		{"alice: Get [/pub/a, /pub/)", as("alice", get("/pub/a", clientv3.WithRange("/pub/")))},
		{"alice: Get [/pub/, \\x00)", as("alice", get("/pub/", clientv3.WithFromKey()))},
		{"alice: Delete [/zzz, /rw\\x00)", as("alice", del("/zzz", clientv3.WithRange("/rw\x00")))},
		{"alice: Delete [/rw, /rw)", as("alice", del("/rw", clientv3.WithRange("/rw")))},
		{"alice: Txn if value of [/other, /aaa) = x", as("alice", txnIf(clientv3.Compare(clientv3.Value("/other").WithRange("/aaa"), "=", "x")))},
		{"alice: Txn then Get [/other, /aaa)", as("alice", txnThen(clientv3.OpGet("/other", clientv3.WithRange("/aaa"))))},
		{"alice: Txn then Delete [/zzz, /rw\\x00)", as("alice", txnThen(clientv3.OpDelete("/zzz", clientv3.WithRange("/rw\x00"))))},
	}
}

// authTokenRevisionSteps: a simple token names only its user; a change
// of the auth store, even one that has nothing to do with the user,
// leaves it good. Over plain gRPC, so that no client re-authenticates
// behind the scenes.
func authTokenRevisionSteps() []authStep {
	return []authStep{
		{"alice (raw gRPC): requests across root's RoleAdd and RoleDelete", rawTokenAcrossAuthChange},
	}
}

func grantOnly(ctx context.Context, c *clientv3.Client) string {
	g, err := c.Grant(ctx, 60)
	return res(g, err, func(g *clientv3.LeaseGrantResponse) string { return fmt.Sprintf("%s ttl=%d", rev(g), g.TTL) })
}

// grantWithKey grants a lease named name as who and, unless key is
// empty, puts key with it.
func grantWithKey(who, name, key string) func(*authSession) string {
	return func(s *authSession) string {
		return as(who, func(ctx context.Context, c *clientv3.Client) string {
			g, err := c.Grant(ctx, 60)
			if err != nil {
				return "grant " + errStr(err)
			}
			s.leases[name] = g.ID
			out := fmt.Sprintf("grant %s ttl=%d", rev(g), g.TTL)
			if key != "" {
				out += "; put " + put(key, "leased", clientv3.WithLease(g.ID))(ctx, c)
			}
			return out
		})(s)
	}
}

// leaseID is the lease the script calls name; "unknown" is none granted.
func (s *authSession) leaseID(name string) clientv3.LeaseID {
	if id, ok := s.leases[name]; ok {
		return id
	}
	return unknownLease
}

// keepAliveOnce renews on a stream of its own: a refusal ends the stream
// with etcd's error, which clientv3 hands back.
func keepAliveOnce(who, lease string) func(*authSession) string {
	return func(s *authSession) string {
		return as(who, func(ctx context.Context, c *clientv3.Client) string {
			r, err := c.KeepAliveOnce(ctx, s.leaseID(lease))
			return res(r, err, func(r *clientv3.LeaseKeepAliveResponse) string {
				return fmt.Sprintf("%s ttl=%d", rev(r), r.TTL)
			})
		})(s)
	}
}

// timeToLive leaves out the remaining TTL, which depends on timing.
func timeToLive(who, lease string, keys bool) func(*authSession) string {
	return func(s *authSession) string {
		return as(who, func(ctx context.Context, c *clientv3.Client) string {
			var opts []clientv3.LeaseOption
			if keys {
				opts = append(opts, clientv3.WithAttachedKeys())
			}
			r, err := c.TimeToLive(ctx, s.leaseID(lease), opts...)
			return res(r, err, func(r *clientv3.LeaseTimeToLiveResponse) string {
				return fmt.Sprintf("%s live=%t granted=%d keys=%q", rev(r), r.TTL > 0, r.GrantedTTL, r.Keys)
			})
		})(s)
	}
}

func revokeLease(who, lease string) func(*authSession) string {
	return func(s *authSession) string {
		return as(who, func(ctx context.Context, c *clientv3.Client) string {
			r, err := c.Revoke(ctx, s.leaseID(lease))
			return res(r, err, rev)
		})(s)
	}
}

// leaseList counts the leases: their ids differ between the servers.
func leaseList(who string) func(*authSession) string {
	return as(who, func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.Leases(ctx)
		return res(r, err, func(r *clientv3.LeaseLeasesResponse) string {
			return fmt.Sprintf("%s leases=%d", rev(r), len(r.Leases))
		})
	})
}

func txnIf(cmp clientv3.Cmp) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.Txn(ctx).If(cmp).Commit()
		return res(r, err, txnStr)
	}
}

// rawTokenAcrossAuthChange uses one simple token of alice's before and
// after root changes the auth store in ways that do not concern her:
// reads, a write and lease requests all still pass.
func rawTokenAcrossAuthChange(s *authSession) string {
	root := s.clients["root"]
	if root == nil {
		return "no client root"
	}
	ctx, cancel := context.WithTimeout(context.Background(), authStepTimeout)
	defer cancel()
	conn, actx, failed := rawDial(ctx, s.addr, "alice", "alicepw")
	if conn == nil {
		return failed
	}
	defer conn.Close()
	kv, leases := pb.NewKVClient(conn), pb.NewLeaseClient(conn)
	rng := func(serializable bool) string {
		r, err := kv.Range(actx, &pb.RangeRequest{Key: []byte("/pub/a"), Serializable: serializable})
		return res(r, err, func(r *pb.RangeResponse) string { return fmt.Sprintf("%s count=%d", rev(r), r.Count) })
	}
	out := []string{"get " + rng(false)}
	out = append(out, "root RoleAdd unrelated "+roleAdd("unrelated")(ctx, root))
	out = append(out, "get "+rng(false), "serializable get "+rng(true))
	p, err := kv.Put(actx, &pb.PutRequest{Key: []byte("/rw"), Value: []byte("raw")})
	out = append(out, "put "+res(p, err, rev))
	out = append(out, "root RoleDelete unrelated "+roleDelete("unrelated")(ctx, root))
	g, err := leases.LeaseGrant(actx, &pb.LeaseGrantRequest{TTL: 60})
	out = append(out, "lease grant "+res(g, err, func(g *pb.LeaseGrantResponse) string { return fmt.Sprintf("%s ttl=%d", rev(g), g.TTL) }))
	if err == nil {
		t, err := leases.LeaseTimeToLive(actx, &pb.LeaseTimeToLiveRequest{ID: g.ID, Keys: true})
		out = append(out, "time to live "+res(t, err, func(t *pb.LeaseTimeToLiveResponse) string { return fmt.Sprintf("%s granted=%d", rev(t), t.GrantedTTL) }))
		r, err := leases.LeaseRevoke(actx, &pb.LeaseRevokeRequest{ID: g.ID})
		out = append(out, "lease revoke "+res(r, err, rev))
	}
	return strings.Join(out, "; ")
}
