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
	// login is the holder's session as the app user, with auth on.
	login *login
	// ka is the holder's keep-alive stream.
	ka *kaStream
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
	// renewing counts keep-alives in flight; lost is set once one went
	// unanswered, since it may still renew the lease at any time.
	renewedBy int64
	renewing  int
	lost      bool
	// renewTerm is the raft term the last renewal was answered in: a
	// leader of a later term has promoted the lease since.
	renewTerm uint64
}

func newLeaseClient(w *World, id int) *leaseClient {
	return &leaseClient{w: w, id: id, rng: w.child(), login: newLogin(appUser)}
}

func (c *leaseClient) start() { c.w.after(c.w.between(0, 2_000_000), c.begin) }

func (c *leaseClient) member() *member {
	live := c.w.live()
	return live[c.rng.IntN(len(live))]
}

// call sends a request to a member and gives the answer (nil: none within
// the client timeout).
func (c *leaseClient) call(r core.Request, cb func(*core.Response)) {
	c.w.invokeWithin(c.member(), c.login, requestRPC(r), c.w.settings.ClientTimeoutUs, cb)
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
	w.after(rec.ttl*1_000_000/3, func() {
		sent := w.now
		rec.renewing++
		c.renew(rec.id, func(resp *core.Response) {
			rec.renewing--
			rec.lost = rec.lost || resp == nil || !definite(resp.Err)
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
			if c.rng.IntN(2) == 0 {
				// Some time after the renewal, so that time has passed.
				w.after(w.between(0, rec.ttl*1_000_000/3), func() { c.timeToLive(rec) })
			}
			c.keepAlive(rec, rounds-1)
		})
	})
}

// timeToLive asks for the lease's remaining TTL: never above the TTL
// granted, and never above what is left of it since the last time the
// lease can have been renewed: the last keep-alive answered, the last
// leader change (a new leader restarts a lease from its checkpointed
// remaining TTL, at most the whole TTL), or the last time a member applied
// its grant (again, replaying its log after a restart), less the clock
// drift bound.
// Lease time runs on the leader's ticks, so the bound is not checked
// across a stretch in which some member's ticks stopped.
func (c *leaseClient) timeToLive(rec *leaseRecord) {
	w := c.w
	sent := w.now
	c.call(core.Request{LeaseTimeToLive: &pb.LeaseTimeToLiveRequest{ID: rec.id}}, func(resp *core.Response) {
		if resp == nil || resp.Err != nil {
			return
		}
		t := resp.Msg.(*pb.LeaseTimeToLiveResponse)
		if t.TTL > rec.ttl || t.GrantedTTL != rec.ttl && t.TTL != -1 {
			w.checks.fail("lease %x: time to live %d (granted %d), granted at %d", rec.id, t.TTL, t.GrantedTTL, rec.ttl)
			return
		}
		renewed := max(rec.renewedBy, w.checks.leaderChangedAt, w.checks.grantedAt[rec.id])
		promoted := t.Header.GetRaftTerm() != rec.renewTerm
		if rec.lost || rec.renewing > 0 || promoted || renewed >= sent || w.checks.ticksStalled(renewed, sent) {
			return
		}
		elapsedS := (sent - renewed) * (1_000_000 - driftMaxPPM) / 1_000_000 / 1_000_000
		if left := rec.ttl - elapsedS + 1; t.TTL > left {
			w.checks.fail("lease %x (ttl %ds): %ds left at %dus, but it was renewed at %dus at the latest: at most %ds left", rec.id, rec.ttl, t.TTL, sent, renewed, left)
		}
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
