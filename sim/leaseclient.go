package sim

import (
	"fmt"
	"math/rand/v2"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// leaseClient plays a service holding a lease: it grants one, attaches a
// few keys, keeps it alive every third of its TTL as clientv3 does, and
// then revokes it or lets it expire, and starts over.
type leaseClient struct {
	w   *World
	id  int
	rng *rand.Rand
	seq int
	cur *leaseRecord
	// login is the holder's session as the app user, with auth on;
	// limited, in worlds with users of limited permissions, one as such
	// a user, which one in permShare of its requests goes as.
	login, limited *login
	// ka is the holder's keep-alive stream.
	ka *kaStream
	// once makes the holder renew as clientv3's KeepAliveOnce does (and
	// etcd's benchmark tool): a stream of its own for each keep-alive,
	// hung up once answered, without require-leader metadata, where
	// KeepAlive keeps one stream that requires a leader. The server runs
	// the two differently (grpcsvc.LeaseKeepAlive).
	once bool
	// locker, if true, makes this the keep-alive side of a lock client
	// (lockclient.go): its trace lines name it so.
	locker bool
}

// tag names the client's kind in the trace.
func (c *leaseClient) tag() string {
	if c.locker {
		return "x"
	}
	return "l"
}

// leaseRecord is what a client knows of one of its leases.
type leaseRecord struct {
	client  int
	id      int64
	ttl     int64 // granted, seconds
	keys    []string
	revoked bool // the client revoked it
	// revokeAcked: the client's revoke was answered with success.
	revokeAcked bool
	// lastRenewSent is when the last keep-alive that came back renewed
	// (TTL > 0) was sent: the lease must live a TTL from then.
	lastRenewSent int64
	grantSent     int64
	// renewedBy is when the last renewal the client knows of was
	// answered (the grant first): the lease was renewed at or before it.
	// renewing counts keep-alives in flight; lostSent is when the last
	// one that went unanswered (or answered with an error that leaves its
	// outcome open) was sent: it may still renew the lease for a while.
	renewedBy int64
	renewing  int
	lostSent  int64
	// renewTerm is the raft term the last renewal was answered in: a
	// leader of a later term has promoted the lease since.
	renewTerm uint64
}

func newLeaseClient(w *World, id int) *leaseClient {
	// Every other holder renews once at a time: fixed by its id, not
	// drawn, so that no draw after it moves.
	return &leaseClient{w: w, id: id, rng: w.child(), login: newLogin(appUser), once: id%2 == 1}
}

func (c *leaseClient) start() { c.w.after(c.w.between(0, 2_000_000), c.begin) }

func (c *leaseClient) member() *member {
	live := c.w.live()
	return live[c.rng.IntN(len(live))]
}

// call sends a request to a member and gives the answer (nil: none within
// the client timeout). With auth on, the permission checker judges the
// answer (checks_leaseperm.go).
func (c *leaseClient) call(r core.Request, cb func(*core.Response)) {
	l := c.login
	if c.limited != nil && c.rng.IntN(permShare) == 0 {
		l = c.limited
	}
	c.callAs(l, r, cb)
}

// callAs sends a request as l's user.
func (c *leaseClient) callAs(l *login, r core.Request, cb func(*core.Response)) {
	w, m := c.w, c.member()
	op := w.checks.perm.leaseCall(m, l, r)
	w.invokeWithin(m, l, requestRPC(r), w.settings.ClientTimeoutUs, func(resp *core.Response) {
		w.checks.perm.leaseAnswered(op, resp)
		cb(resp)
	})
}

func (c *leaseClient) begin() {
	w := c.w
	if w.stopping {
		return
	}
	c.seq++
	rec := &leaseRecord{client: c.id, ttl: 3 + c.rng.Int64N(w.settings.LeaseTTLMax-2), grantSent: w.now}
	c.call(core.Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: rec.ttl}}, func(resp *core.Response) {
		if resp == nil || resp.Err != nil {
			w.after(500_000, c.begin)
			return
		}
		g := resp.Msg.(*pb.LeaseGrantResponse)
		rec.id, rec.ttl, rec.lastRenewSent, rec.renewedBy, rec.renewTerm = g.ID, g.TTL, rec.grantSent, w.now, g.Header.GetRaftTerm()
		c.cur = rec
		w.checks.leases = append(w.checks.leases, rec)
		w.trace.logf(w.now, "l%d granted lease %x ttl %d", c.id, g.ID, g.TTL)
		c.attach(rec, 1+c.rng.IntN(3), 2+c.rng.IntN(12))
	})
}

// attach puts n keys on the lease, then keeps it alive rounds times.
func (c *leaseClient) attach(rec *leaseRecord, n, rounds int) {
	if n == 0 && c.limited != nil && c.rng.IntN(2) == 0 {
		c.rogueRevoke(rec, rounds)
		return
	}
	if n == 0 {
		c.keepAlive(rec, rounds)
		return
	}
	key := fmt.Sprintf("l/%d/%d/%d", c.id, c.seq, n)
	c.call(core.Request{Put: &pb.PutRequest{Key: []byte(key), Value: []byte("held"), Lease: rec.id}}, func(resp *core.Response) {
		if resp != nil && resp.Err == nil {
			rec.keys = append(rec.keys, key)
		}
		c.attach(rec, n-1, rounds)
	})
}

func (c *leaseClient) keepAlive(rec *leaseRecord, rounds int) {
	w := c.w
	if rounds == 0 || w.stopping {
		c.finish(rec)
		return
	}
	// Every third of the TTL, as clientv3 does; now and then up to two
	// thirds, as a holder that stalls, so that checkpoints record less
	// left.
	waitUs := rec.ttl * 1_000_000 / 3
	if c.rng.IntN(4) == 0 {
		waitUs += w.between(0, waitUs)
	}
	// TimeToLive twice before the renewal: once at any time, once just
	// before it, so that many ask after a leader change.
	w.after(w.between(0, waitUs), func() { c.timeToLive(rec) })
	w.after(w.between(waitUs*3/4, waitUs*19/20), func() { c.timeToLive(rec) })
	w.after(waitUs, func() {
		sent := w.now
		rec.renewing++
		c.renew(rec.id, func(resp *core.Response) {
			rec.renewing--
			if resp == nil || !definite(resp.Err) {
				rec.lostSent = sent
			}
			if resp != nil && resp.Err == nil {
				if ka := resp.Msg.(*pb.LeaseKeepAliveResponse); ka.TTL > 0 {
					rec.lastRenewSent = max(rec.lastRenewSent, sent)
					rec.renewedBy, rec.renewTerm = w.now, ka.Header.GetRaftTerm()
				} else {
					w.trace.logf(w.now, "l%d lease %x is gone", c.id, rec.id)
					c.w.after(c.w.between(100_000, 1_000_000), c.begin)
					return
				}
			}
			c.keepAlive(rec, rounds-1)
		})
	})
}

// timeToLive asks for the lease's remaining TTL, now and then with its
// keys, and now and then lists the leases: the lease checker judges the
// TTL (checkTimeToLive), the permission checker who may ask.
func (c *leaseClient) timeToLive(rec *leaseRecord) {
	w := c.w
	sent := w.now
	if c.rng.IntN(4) == 0 {
		c.call(core.Request{LeaseLeases: true}, func(*core.Response) {})
	}
	c.call(core.Request{LeaseTimeToLive: &pb.LeaseTimeToLiveRequest{ID: rec.id, Keys: c.rng.IntN(2) == 0}}, func(resp *core.Response) {
		if resp != nil && resp.Err == nil {
			w.checks.checkTimeToLive(rec, sent, resp.Msg.(*pb.LeaseTimeToLiveResponse))
		}
	})
}

// rogueRevoke has the holder's limited user try to revoke the lease
// while its keys are on it, as another service sharing the lease might:
// refused unless the user may write every key (checks_leaseperm.go
// judges which). If refused, the holder keeps the lease alive.
func (c *leaseClient) rogueRevoke(rec *leaseRecord, rounds int) {
	w := c.w
	c.callAs(c.limited, core.Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: rec.id}}, func(resp *core.Response) {
		w.trace.logf(w.now, "l%d revoke lease %x as %s: %s", c.id, rec.id, c.limited.user, outcome(resp))
		if resp != nil && resp.Err == nil {
			rec.revoked, rec.revokeAcked = true, true
			w.after(w.between(100_000, 1_000_000), c.begin)
			return
		}
		rec.revoked = rec.revoked || resp == nil || !definite(resp.Err)
		c.keepAlive(rec, rounds)
	})
}

// finish revokes the lease or lets it expire, then starts over.
func (c *leaseClient) finish(rec *leaseRecord) {
	w := c.w
	if c.rng.IntN(2) == 0 {
		rec.revoked = true
		c.call(core.Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: rec.id}}, func(resp *core.Response) {
			rec.revokeAcked = resp != nil && resp.Err == nil
			w.trace.logf(w.now, "l%d revoke lease %x: %s", c.id, rec.id, outcome(resp))
			w.after(w.between(100_000, 1_000_000), c.begin)
		})
		return
	}
	w.trace.logf(w.now, "l%d lets lease %x expire", c.id, rec.id)
	w.after(w.between(100_000, 1_000_000), c.begin)
}

// outcome describes a response for the trace: ok, its error, or no answer.
func outcome(r *core.Response) string {
	switch {
	case r == nil:
		return "no answer"
	case r.Err != nil:
		return r.Err.Error()
	}
	return "ok"
}
