package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/grpcsvc"
)

// lockClient plays a service that coordinates through etcd's Lock and
// Election services, as etcdctl's lock and elect do: it grants a lease
// and keeps it alive on a keep-alive stream, locks one of a few names
// under it (or campaigns in one of a few elections), holds the lock a
// while (as leader: proclaims new values and asks who leads), then
// unlocks (resigns), and in the end revokes the lease or lets it expire.
// Half the lock clients also keep an Observe stream open on an election,
// and hang it up now and then. Every call goes through etcd's generated
// handlers, the metrics interceptor and the guard, as the other clients'
// do; a Lock or Campaign waits as long as the client will (lockWaitUs),
// and then the client hangs up, which ends the handler's context.
//
// A Lock or Campaign that went unanswered may still run on its member: the
// client then leaves its lease (revokes it, or lets it expire) and starts
// over with a new one, so that no two of its calls ever wait on one lease
// and name at once. With two, etcd itself may grant a lock twice (one
// call's clean-up deletes the key the other then finds re-created), and
// the lock checker (checks_lock.go) holds the server to what etcd
// promises a client that does not.
type lockClient struct {
	w     *World
	id    int
	rng   *rand.Rand
	login *login
	// ka is the client's keep-alive side: a lease holder's stream.
	ka  *leaseClient
	seq int
	// observes names the election the client observes ("": none).
	observes string
}

// The lock and election names the lock clients share: few, so that
// they contend. Their keys are under lockSpace, apart from every other
// client's.
const (
	lockSpace   = "x/"
	lockNames   = 2
	electNames  = 2
	lockRounds  = 3
	proclaimMax = 3
)

func lockName(i int) string  { return fmt.Sprintf("%slock%d", lockSpace, i) }
func electName(i int) string { return fmt.Sprintf("%select%d", lockSpace, i) }

// lockSession is one lease of the client's and whether it still keeps
// it alive.
type lockSession struct {
	lease, ttl int64
	left       bool
}

func newLockClient(w *World, id int) *lockClient {
	rng := w.child()
	l := newLogin(appUser)
	c := &lockClient{w: w, id: id, rng: rng, login: l, ka: &leaseClient{w: w, id: id, rng: rng, login: l, locker: true}}
	if rng.IntN(2) == 0 {
		c.observes = electName(rng.IntN(electNames))
	}
	return c
}

func (c *lockClient) start() {
	w := c.w
	w.after(w.between(0, 2_000_000), c.begin)
	if c.observes != "" {
		w.after(w.between(0, 3_000_000), c.observe)
	}
}

func (c *lockClient) member() *member {
	live := c.w.live()
	return live[c.rng.IntN(len(live))]
}

// lockWaitUs is how long the client waits for a Lock or Campaign: a
// holder keeps its lock up to a second or two, one that vanished keeps
// it until its lease expires.
func (c *lockClient) lockWaitUs() int64 {
	return c.w.between(2_000_000, 15_000_000)
}

// call sends a unary call and gives the answer (nil: none within the
// client timeout).
func (c *lockClient) call(r rpc, cb func(*core.Response)) {
	w := c.w
	w.invokeWithin(c.member(), c.login, r, w.settings.ClientTimeoutUs, func(resp *core.Response) {
		c.refused(resp)
		cb(resp)
	})
}

// refused makes the client log in again when the member refused its
// token: Lock and Election send etcd's auth errors as Unknown, with
// their messages.
func (c *lockClient) refused(resp *core.Response) {
	if resp == nil || resp.Err == nil {
		return
	}
	desc := rpctypes.ErrorDesc(resp.Err)
	if slices.ContainsFunc(authErrors, func(e error) bool { return rpctypes.ErrorDesc(e) == desc }) {
		c.login.forget()
	}
}

// longCall sends a call that may wait (Lock, Campaign) on m and hangs up
// after waitUs: after the network, the handler's context ends, as gRPC's
// does when its client cancels, and the member's waits wake to see it.
func (c *lockClient) longCall(m *member, r rpc, waitUs int64, cb func(*core.Response)) {
	w := c.w
	ctx, cancel := context.WithCancel(context.Background())
	done := false
	finish := func(resp *core.Response) {
		if !done {
			done = true
			c.refused(resp)
			cb(resp)
		}
	}
	w.after(w.settings.Net.LatencyMinUs, m.event(func() {
		w.with(m, c.login, func(token string, failed *core.Response) {
			if failed != nil {
				finish(failed)
				return
			}
			in := m.inst
			m.spawnCallIn(ctx, token, func(resp core.Response) {
				w.after(w.settings.Net.LatencyMinUs, func() { finish(&resp) })
			}, func(ctx context.Context, svc *registry, guard *grpcsvc.Guard) (proto.Message, error) {
				return serve(ctx, svc, guard, in, r)
			})
		})
	}))
	w.after(waitUs, func() {
		if done {
			return
		}
		finish(nil)
		w.after(w.settings.Net.LatencyMinUs, func() {
			cancel()
			if m.up {
				m.wakeWaits()
			}
		})
	})
}

func lockRPC(method string, req proto.Message) rpc {
	return func() (string, proto.Message) { return "/v3lockpb.Lock/" + method, req }
}

func electionRPC(method string, req proto.Message) rpc {
	return func() (string, proto.Message) { return "/v3electionpb.Election/" + method, req }
}

// begin grants a lease, keeps it alive, and locks or campaigns under it.
func (c *lockClient) begin() {
	w := c.w
	if w.stopping {
		return
	}
	c.seq++
	ttl := 3 + c.rng.Int64N(w.settings.LeaseTTLMax-2)
	c.call(requestRPC(core.Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: ttl}}), func(resp *core.Response) {
		if resp == nil || resp.Err != nil {
			w.after(500_000, c.begin)
			return
		}
		g := resp.Msg.(*pb.LeaseGrantResponse)
		s := &lockSession{lease: g.ID, ttl: g.TTL}
		w.trace.logf(w.now, "x%d granted lease %x ttl %d", c.id, s.lease, s.ttl)
		c.keepAlive(s)
		if c.rng.IntN(3) == 0 {
			c.campaign(s)
		} else {
			c.lock(s, 1+c.rng.IntN(lockRounds))
		}
	})
}

// keepAlive renews the lease every third of its TTL, as clientv3 does,
// until the client leaves it.
func (c *lockClient) keepAlive(s *lockSession) {
	w := c.w
	w.after(s.ttl*1_000_000/3, func() {
		if s.left || w.stopping {
			return
		}
		c.ka.renew(s.lease, func(*core.Response) { c.keepAlive(s) })
	})
}

// leave stops keeping the lease alive and, half the time, revokes it
// (its keys go with it); either way the client starts over.
func (c *lockClient) leave(s *lockSession) {
	w := c.w
	s.left = true
	next := func() { w.after(w.between(100_000, 1_000_000), c.begin) }
	if c.rng.IntN(2) == 0 {
		w.trace.logf(w.now, "x%d lets lease %x expire", c.id, s.lease)
		next()
		return
	}
	c.call(requestRPC(core.Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: s.lease}}), func(resp *core.Response) {
		w.trace.logf(w.now, "x%d revoke lease %x: %s", c.id, s.lease, outcome(resp))
		next()
	})
}

// lock takes a lock under the session's lease, holds it a while and
// unlocks it, rounds times.
func (c *lockClient) lock(s *lockSession, rounds int) {
	w := c.w
	if rounds == 0 || w.stopping {
		c.leave(s)
		return
	}
	name := lockName(c.rng.IntN(lockNames))
	epoch := w.epoch
	c.longCall(c.member(), lockRPC("Lock", &v3lockpb.LockRequest{Name: []byte(name), Lease: s.lease}), c.lockWaitUs(), func(resp *core.Response) {
		w.trace.logf(w.now, "x%d lock %s under %x: %s", c.id, name, s.lease, outcome(resp))
		if resp == nil || resp.Err != nil {
			c.leave(s)
			return
		}
		lr := resp.Msg.(*v3lockpb.LockResponse)
		w.checks.noteLock(lockGrant{client: c.id, name: name, key: string(lr.Key), lease: s.lease,
			rev: lr.Header.GetRevision(), epoch: epoch, sameEpoch: epoch == w.epoch})
		w.after(w.between(0, 1_000_000), func() {
			c.call(lockRPC("Unlock", &v3lockpb.UnlockRequest{Key: lr.Key}), func(resp *core.Response) {
				w.trace.logf(w.now, "x%d unlock %s: %s", c.id, lr.Key, outcome(resp))
				c.lock(s, rounds-1)
			})
		})
	})
}

// campaign runs for leader of an election under the session's lease;
// once it leads, it proclaims a few values, asking who leads after each,
// and resigns.
func (c *lockClient) campaign(s *lockSession) {
	w := c.w
	name := electName(c.rng.IntN(electNames))
	value := fmt.Sprintf("x%d.%d", c.id, c.seq)
	epoch := w.epoch
	c.longCall(c.member(), electionRPC("Campaign", &v3electionpb.CampaignRequest{Name: []byte(name), Lease: s.lease, Value: []byte(value)}), c.lockWaitUs(), func(resp *core.Response) {
		w.trace.logf(w.now, "x%d campaign %s under %x: %s", c.id, name, s.lease, outcome(resp))
		if resp == nil || resp.Err != nil {
			c.leave(s)
			return
		}
		l := resp.Msg.(*v3electionpb.CampaignResponse).Leader
		w.checks.noteCampaign(campaignWon{client: c.id, name: name, key: string(l.Key), lease: s.lease, rev: l.Rev,
			appliedBy: w.appliedMax(), epoch: epoch, sameEpoch: epoch == w.epoch})
		c.lead(s, l, c.rng.IntN(proclaimMax+1))
	})
}

// lead proclaims n values as leader l, asking who leads after each, then
// resigns.
func (c *lockClient) lead(s *lockSession, l *v3electionpb.LeaderKey, n int) {
	w := c.w
	w.after(w.between(0, 1_000_000), func() {
		if n == 0 || w.stopping {
			c.call(electionRPC("Resign", &v3electionpb.ResignRequest{Leader: l}), func(resp *core.Response) {
				w.trace.logf(w.now, "x%d resign %s: %s", c.id, l.Key, outcome(resp))
				c.leave(s)
			})
			return
		}
		value := fmt.Sprintf("x%d.%d.%d", c.id, c.seq, n)
		c.call(electionRPC("Proclaim", &v3electionpb.ProclaimRequest{Leader: l, Value: []byte(value)}), func(resp *core.Response) {
			w.trace.logf(w.now, "x%d proclaim %s=%s: %s", c.id, l.Key, value, outcome(resp))
			c.askLeader(string(l.Name))
			c.lead(s, l, n-1)
		})
	})
}

// askLeader asks who leads the election name; the lock checker judges
// the answer.
func (c *lockClient) askLeader(name string) {
	w := c.w
	epoch := w.epoch
	c.call(electionRPC("Leader", &v3electionpb.LeaderRequest{Name: []byte(name)}), func(resp *core.Response) {
		if resp == nil || resp.Err != nil {
			return
		}
		lr := resp.Msg.(*v3electionpb.LeaderResponse)
		rev := lr.Header.GetRevision()
		w.checks.noteLeader(leaderSeen{client: c.id, name: name, kv: lr.Kv, lo: rev, hi: rev, epoch: epoch, sameEpoch: epoch == w.epoch, what: "Leader"})
	})
}

// observeMethod is the Observe stream's full gRPC name.
const observeMethod = "/v3electionpb.Election/Observe"

var observeRPC = streamRPC{observeMethod}

// observeStream is an Observe call's server stream in process: its Recv
// gives the request, its Send hands each leader to the client after the
// network.
type observeStream struct {
	streamBase
	req  *v3electionpb.LeaderRequest
	send func(*v3electionpb.LeaderResponse) error
}

var _ grpc.ServerStream = (*observeStream)(nil)

func (s *observeStream) RecvMsg(m any) error {
	proto.Merge(m.(proto.Message), s.req)
	return nil
}

func (s *observeStream) SendMsg(m any) error { return s.send(m.(*v3electionpb.LeaderResponse)) }

// observe opens an Observe stream on the client's election, reads it
// until it ends or the client hangs up (after a few seconds), and opens
// another.
func (c *lockClient) observe() {
	w := c.w
	if w.stopping {
		return
	}
	m := c.member()
	name := c.observes
	ctx, cancel := context.WithCancel(context.Background())
	ended := false
	again := func() {
		if !ended {
			ended = true
			w.after(w.between(100_000, 1_000_000), c.observe)
		}
	}
	epoch := w.epoch
	o := &observeStream{req: &v3electionpb.LeaderRequest{Name: []byte(name)}}
	o.send = func(r *v3electionpb.LeaderResponse) error {
		if ended {
			return errStreamGone
		}
		r = proto.CloneOf(r)
		w.after(w.settings.Net.LatencyMinUs, func() {
			if ended {
				return
			}
			w.trace.logf(w.now, "x%d observed %s: %s@%d", c.id, name, r.Kv.GetKey(), r.Kv.GetModRevision())
			w.checks.noteLeader(leaderSeen{client: c.id, name: name, kv: r.Kv, lo: r.Kv.GetModRevision(), hi: r.Header.GetRevision(),
				epoch: epoch, sameEpoch: epoch == w.epoch, what: "Observe"})
		})
		return nil
	}
	w.trace.logf(w.now, "x%d observes %s on %s", c.id, name, m.name)
	w.after(w.settings.Net.LatencyMinUs, m.event(func() {
		w.with(m, c.login, func(token string, failed *core.Response) {
			if failed != nil {
				again()
				return
			}
			m.spawnCallIn(ctx, token, func(resp core.Response) {
				w.after(w.settings.Net.LatencyMinUs, func() {
					if !ended {
						w.trace.logf(w.now, "x%d observe stream on %s ended: %v", c.id, m.name, resp.Err)
						c.refused(&resp)
					}
					again()
				})
			}, func(ctx context.Context, _ *registry, _ *grpcsvc.Guard) (proto.Message, error) {
				o.ctx = ctx
				info := &grpc.StreamServerInfo{FullMethod: observeMethod, IsServerStream: true}
				return nil, m.runStream(observeRPC, o, info)
			})
		})
	}))
	w.after(w.between(2_000_000, 10_000_000), func() {
		if ended {
			return
		}
		w.trace.logf(w.now, "x%d hangs up its observe stream on %s", c.id, m.name)
		again()
		w.after(w.settings.Net.LatencyMinUs, func() {
			cancel()
			if m.up {
				m.wakeWaits()
			}
		})
	})
}

// appliedMax is the newest revision any member has applied: no answer
// given now was read at a newer one.
func (w *World) appliedMax() int64 {
	var rev int64
	for _, m := range w.members {
		if m.up && m.node != nil {
			rev = max(rev, m.node.Rev())
		}
	}
	return rev
}

// lockGrant is a Lock answered with success: key holds the lock name
// from revision rev until it is deleted. sameEpoch says whether the
// answer came in the epoch the call was made in (restore.go): only then
// is the epoch's history the one to judge it by.
type lockGrant struct {
	client    int
	name, key string
	lease     int64
	rev       int64
	epoch     int
	sameEpoch bool
}

// campaignWon is a Campaign answered with success: key, created at rev,
// leads the election name; appliedBy is the newest revision applied when
// the answer came.
type campaignWon struct {
	client    int
	name, key string
	lease     int64
	rev       int64
	appliedBy int64
	epoch     int
	sameEpoch bool
}

// leaderSeen is a leader a client was told of, by Leader or Observe: kv
// was the election's leader at some revision in [lo, hi].
type leaderSeen struct {
	client    int
	name      string
	kv        *mvccpb.KeyValue
	lo, hi    int64
	epoch     int
	sameEpoch bool
	what      string
}
