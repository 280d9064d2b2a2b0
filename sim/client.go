package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/detcd/detcd/core"
)

// client is a simulated etcd client: one operation at a time, with a
// timeout, against one member until something goes wrong, then another,
// as clientv3 does when an endpoint fails.
type client struct {
	w      *World
	id     int
	rng    *rand.Rand
	target int
	seq    int
	// lastMod is the mod revision this client last saw per key, for the
	// expectations of its compare-and-swaps.
	lastMod map[string]int64
	// pending finishes the operation in flight, if any; at the end of a
	// run it is recorded with an unknown outcome.
	pending func(*core.Response)
	// backoffUs is the extra wait after "too many requests", doubled on
	// each refusal in a row, as an application would back off.
	backoffUs int64
	// login is the client's session as the app user, with auth on.
	login *login
}

// backoffMinUs and backoffMaxUs bound a client's back-off.
const (
	backoffMinUs = 50_000
	backoffMaxUs = 1_600_000
)

func newClient(w *World, id int) *client {
	c := &client{w: w, id: id, rng: w.child(), lastMod: map[string]int64{}, login: newLogin(appUser)}
	c.target = c.rng.IntN(len(w.members))
	return c
}

// pick chooses a member to talk to: any that is not removed.
func (c *client) pick() int {
	live := c.w.live()
	return live[c.rng.IntN(len(live))].idx
}

func (c *client) start() { c.w.after(c.think(), c.issue) }

// abandon records the operation in flight, if any, as if it timed out: a
// write's outcome is unknown, a read had no effect.
func (c *client) abandon() {
	if c.pending != nil {
		c.pending(nil)
	}
}

func (c *client) think() int64 {
	s := c.w.settings
	return s.ThinkMinUs + c.rng.Int64N(s.ThinkMaxUs-s.ThinkMinUs+1)
}

func groupKey(g, k int) string { return fmt.Sprintf("g%02d/k%d", g, k) }

// next picks the client's next operation.
func (c *client) next() *Op {
	s := c.w.settings
	c.seq++
	g := c.rng.IntN(s.KeyGroups)
	op := &Op{Client: c.id, Group: g, Key: groupKey(g, c.rng.IntN(s.KeysPerGroup)), Value: fmt.Sprintf("c%d-%d", c.id, c.seq)}
	switch r := c.rng.IntN(100); {
	case r < 30:
		op.Kind = opPut
	case r < 55:
		op.Kind = opGet
	case r < 65:
		op.Kind = opGetSerializable
	case r < 72:
		op.Kind = opDelete
	case r < 87:
		op.Kind = opCAS
		op.ExpectMod = c.lastMod[op.Key]
	case r < 94:
		op.Kind = opMultiPut
		for k := 0; k < s.KeysPerGroup; k++ {
			op.Keys = append(op.Keys, groupKey(g, k))
		}
	default:
		op.Kind = opRangeGroup
	}
	return op
}

func (op *Op) request() core.Request {
	switch op.Kind {
	case opPut:
		return core.Request{Put: &pb.PutRequest{Key: []byte(op.Key), Value: []byte(op.Value)}}
	case opGet, opGetSerializable:
		return core.Request{Range: &pb.RangeRequest{Key: []byte(op.Key), Serializable: op.Kind == opGetSerializable}}
	case opDelete:
		return core.Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte(op.Key)}}
	case opCAS:
		return core.Request{Txn: &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte(op.Key), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: op.ExpectMod}}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(op.Key), Value: []byte(op.Value)}}}},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(op.Key)}}}},
		}}
	case opMultiPut:
		t := &pb.TxnRequest{}
		for _, k := range op.Keys {
			t.Success = append(t.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(op.Value)}}})
		}
		return core.Request{Txn: t}
	default:
		p := fmt.Sprintf("g%02d/", op.Group)
		return core.Request{Range: &pb.RangeRequest{Key: []byte(p), RangeEnd: []byte(fmt.Sprintf("g%02d0", op.Group))}}
	}
}

func (c *client) latency() int64 {
	s := c.w.settings.Net
	return s.LatencyMinUs + c.rng.Int64N(s.LatencyMaxUs-s.LatencyMinUs+1)
}

// issue sends the client's next operation and arranges for its answer or
// its timeout, whichever comes first.
func (c *client) issue() {
	w := c.w
	if w.stopping {
		return
	}
	op := c.next()
	if w.members[c.target].removed {
		c.target = c.pick()
	}
	op.Member, op.Call = c.target, w.now
	w.stats.Ops++
	done := false
	finish := func(resp *core.Response) {
		if done {
			return
		}
		done = true
		c.pending = nil
		c.record(op, resp)
		w.after(c.think()+c.backoffUs, c.issue)
	}
	c.pending = finish
	m := w.members[c.target]
	w.after(c.latency(), m.event(func() {
		w.with(m, c.login, op.request(), func(req core.Request, failed *core.Response) {
			if failed != nil {
				w.after(c.latency(), func() { finish(failed) })
				return
			}
			m.call(req, func(r core.Response) {
				w.after(c.latency(), func() { finish(&r) })
			})
		})
	}))
	w.after(w.settings.ClientTimeoutUs, func() {
		if !done {
			c.target = c.pick()
		}
		finish(nil)
	})
}

// record turns a response (nil: a timeout) into the op's outcome.
func (c *client) record(op *Op, resp *core.Response) {
	w := c.w
	op.Return = w.now
	switch {
	case resp == nil || (resp.Err != nil && !definite(resp.Err)):
		if op.isWrite() {
			op.Unknown, op.Return = true, -1
			w.stats.OpsUnknown++
		} else {
			op.Failed = true
			w.stats.OpsFailed++
		}
		if resp != nil {
			c.target = c.pick()
		}
	case errors.Is(resp.Err, rpctypes.ErrGRPCRequestTooManyRequests):
		// Back-pressure is a legal answer: the write did not happen, and
		// the client waits before it tries again.
		op.Failed = true
		w.stats.OpsFailed++
		c.backoffUs = min(max(2*c.backoffUs, backoffMinUs), backoffMaxUs)
	case errors.Is(resp.Err, errNotSent) || authRefused(resp.Err):
		// Refused for its credentials before it did anything: log in
		// again, as clientv3 does.
		op.Failed = true
		w.stats.OpsFailed++
		c.login.forget()
	case errors.Is(resp.Err, rpctypes.ErrGRPCNotSupportedForLearner):
		// A learner serves no such call, as etcd's: clientv3 moves to
		// another endpoint.
		op.Failed = true
		w.stats.OpsFailed++
		c.target = c.pick()
	case resp.Err != nil:
		op.Failed = true
		w.stats.OpsFailed++
		w.checks.fail("client %d: %s failed: %v", c.id, op, resp.Err)
	default:
		c.decode(op, resp)
		w.stats.OpsOK++
		c.backoffUs = 0
	}
	w.trace.logf(w.now, "%s", op)
	w.checks.op(op)
}

// definite errors say the request had no effect.
func definite(err error) bool {
	for _, e := range []error{rpctypes.ErrGRPCTimeout, rpctypes.ErrGRPCTimeoutDueToLeaderFail, rpctypes.ErrGRPCNoLeader, rpctypes.ErrGRPCLeaderChanged, rpctypes.ErrGRPCStopped} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

func (c *client) decode(op *Op, resp *core.Response) {
	kvs := func(rr *pb.RangeResponse) {
		for _, k := range rr.Kvs {
			op.KVs = append(op.KVs, kv{Key: string(k.Key), Value: string(k.Value), Mod: k.ModRevision, Create: k.CreateRevision, Version: k.Version})
			c.lastMod[string(k.Key)] = k.ModRevision
		}
	}
	switch r := resp.Msg.(type) {
	case *pb.PutResponse:
		op.Rev = r.Header.Revision
		c.lastMod[op.Key] = op.Rev
	case *pb.RangeResponse:
		op.Rev = r.Header.Revision
		kvs(r)
		if len(r.Kvs) == 0 && op.Kind != opRangeGroup {
			c.lastMod[op.Key] = 0
		}
	case *pb.DeleteRangeResponse:
		op.Rev, op.Deleted = r.Header.Revision, r.Deleted
		c.lastMod[op.Key] = 0
	case *pb.TxnResponse:
		op.Rev, op.Succeeded = r.Header.Revision, r.Succeeded
		if op.Kind == opCAS {
			if r.Succeeded {
				c.lastMod[op.Key] = op.Rev
			} else if rr := r.Responses[0].GetResponseRange(); rr != nil {
				kvs(rr)
				if len(rr.Kvs) == 0 {
					c.lastMod[op.Key] = 0
				}
			}
		}
	}
}
