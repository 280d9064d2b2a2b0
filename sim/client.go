package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

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
	// root is its session as root, for what etcd lets only an
	// administrator do (Compact).
	root *login
	// limited, if set, is its session as a user of limited permissions
	// (permusers.go), which some of its operations go as, drawn from
	// limitedRng.
	limited    *login
	limitedRng *rand.Rand
}

// backoffMinUs and backoffMaxUs bound a client's back-off.
const (
	backoffMinUs = 50_000
	backoffMaxUs = 1_600_000
)

func newClient(w *World, id int) *client {
	c := &client{w: w, id: id, rng: w.child(), lastMod: map[string]int64{}, login: newLogin(appUser), root: newLogin(rootUser)}
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

func groupKey(g, k int) string {
	// Appended by hand: the checkers build keys by the million, and
	// fmt.Sprintf("g%02d/k%d") was a twentieth of the simulator's time.
	b := make([]byte, 0, 16)
	b = append(b, 'g')
	if g < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, int64(g), 10)
	b = append(b, "/k"...)
	b = strconv.AppendInt(b, int64(k), 10)
	return string(b)
}

// next picks the client's next operation, by the run's weights.
func (c *client) next() *Op {
	s := c.w.settings
	c.seq++
	g := c.rng.IntN(s.KeyGroups)
	op := &Op{Client: c.id, Group: g, Kind: c.pickKind(), Seen: c.w.checks.maxRev}
	key := c.key(g)
	value := fmt.Sprintf("c%d-%d", c.id, c.seq)
	switch op.Kind {
	case opPut:
		op.Req.Put = c.putRequest(key, value)
	case opGet, opGetSerializable:
		op.Req.Range = &pb.RangeRequest{Key: []byte(key), Serializable: op.Kind == opGetSerializable, KeysOnly: c.rng.IntN(8) == 0}
	case opDelete:
		op.Req.DeleteRange = &pb.DeleteRangeRequest{Key: []byte(key), PrevKv: c.rng.IntN(2) == 0}
	case opCAS:
		op.Req.Txn = &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte(key), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: c.lastMod[key]}}},
			Success: []*pb.RequestOp{putOp(key, value)},
			Failure: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: []byte(key)})},
		}
	case opMultiPut:
		t := &pb.TxnRequest{}
		for k := 0; k < s.KeysPerGroup; k++ {
			t.Success = append(t.Success, putOp(groupKey(g, k), value))
		}
		op.Req.Txn = t
	case opRangeGroup:
		op.Req.Range = c.groupRange(g)
		op.Req.Range.Serializable = c.rng.IntN(5) == 0
	case opDeleteGroup:
		op.Req.DeleteRange = &pb.DeleteRangeRequest{Key: []byte(groupPrefix(g)), RangeEnd: []byte(groupEnd(g)), PrevKv: c.rng.IntN(2) == 0}
	case opTxn:
		op.Req.Txn = c.txn(g, value, 2)
	case opRangeAt:
		op.Req.Range = c.rangeAt(g, key)
	default:
		op.Req.Compaction = c.compaction()
	}
	return op
}

// pickKind draws an operation kind by the run's weights.
func (c *client) pickKind() opKind {
	ws := c.w.settings.Weights
	total := 0
	for _, w := range ws {
		total += w
	}
	r := c.rng.IntN(total)
	for k, w := range ws {
		if r < w {
			return opKind(k)
		}
		r -= w
	}
	return opPut
}

func (c *client) key(g int) string { return groupKey(g, c.rng.IntN(c.w.settings.KeysPerGroup)) }

func groupPrefix(g int) string { return fmt.Sprintf("g%02d/", g) }
func groupEnd(g int) string    { return fmt.Sprintf("g%02d0", g) }

// putRequest is a put, now and then with prev_kv, ignore_value or
// ignore_lease (which fail with ErrKeyNotFound on a missing key).
func (c *client) putRequest(key, value string) *pb.PutRequest {
	p := &pb.PutRequest{Key: []byte(key), Value: []byte(value), PrevKv: c.rng.IntN(2) == 0}
	switch c.rng.IntN(8) {
	case 0:
		p.IgnoreValue, p.Value = true, nil
	case 1:
		p.IgnoreLease = true
	}
	return p
}

func putOp(key, value string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte(value)}}}
}

func rangeOp(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}

func deleteOp(key string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(key), PrevKv: true}}}
}

// groupRange reads a whole group with a random limit, sort, count-only
// or keys-only.
func (c *client) groupRange(g int) *pb.RangeRequest {
	r := &pb.RangeRequest{Key: []byte(groupPrefix(g)), RangeEnd: []byte(groupEnd(g))}
	if c.rng.IntN(2) == 0 {
		r.Limit = 1 + c.rng.Int64N(int64(groupKeysMax))
	}
	if c.rng.IntN(2) == 0 {
		r.SortTarget = pb.RangeRequest_SortTarget(c.rng.IntN(5))
		r.SortOrder = pb.RangeRequest_SortOrder(c.rng.IntN(3))
	}
	r.CountOnly = c.rng.IntN(8) == 0
	r.KeysOnly = c.rng.IntN(6) == 0
	return r
}

var compareTargets = []pb.Compare_CompareTarget{pb.Compare_VERSION, pb.Compare_CREATE, pb.Compare_MOD, pb.Compare_VALUE, pb.Compare_LEASE}

// txn draws a transaction on group g: one or two compares of any target
// and result, near values the client has seen; each branch writes
// distinct keys, as etcd requires, and reads; the success branch may nest
// a transaction on the keys it leaves.
func (c *client) txn(g int, value string, depth int) *pb.TxnRequest {
	t := &pb.TxnRequest{}
	for n := 1 + c.rng.IntN(2); n > 0; n-- {
		t.Compare = append(t.Compare, c.compare(c.key(g)))
	}
	t.Success = c.branch(g, value, depth)
	t.Failure = c.branch(g, value, 0)
	return t
}

func (c *client) compare(key string) *pb.Compare {
	cp := &pb.Compare{Key: []byte(key), Target: compareTargets[c.rng.IntN(len(compareTargets))], Result: pb.Compare_CompareResult(c.rng.IntN(4))}
	near := c.lastMod[key] + c.rng.Int64N(5) - 2
	switch cp.Target {
	case pb.Compare_VERSION:
		cp.TargetUnion = &pb.Compare_Version{Version: c.rng.Int64N(4)}
	case pb.Compare_CREATE:
		cp.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: max(near, 0)}
	case pb.Compare_MOD:
		cp.TargetUnion = &pb.Compare_ModRevision{ModRevision: max(near, 0)}
	case pb.Compare_VALUE:
		cp.TargetUnion = &pb.Compare_Value{Value: []byte(fmt.Sprintf("c%d-%d", c.rng.IntN(len(c.w.clients)), c.rng.IntN(c.seq+1)))}
	default:
		cp.TargetUnion = &pb.Compare_Lease{Lease: c.rng.Int64N(2)}
	}
	return cp
}

// branch draws up to three ops: puts and deletes on distinct keys, reads
// of a key or the group, and, with depth left, a nested transaction that
// writes a key no write of the branch touches.
func (c *client) branch(g int, value string, depth int) []*pb.RequestOp {
	keys := c.rng.Perm(c.w.settings.KeysPerGroup)
	var ops []*pb.RequestOp
	for n := c.rng.IntN(4); n > 0; n-- {
		switch r := c.rng.IntN(4); {
		case r == 0 && len(keys) > 0:
			ops, keys = append(ops, putOp(groupKey(g, keys[0]), value)), keys[1:]
		case r == 1 && len(keys) > 0:
			ops, keys = append(ops, deleteOp(groupKey(g, keys[0]))), keys[1:]
		case r == 2:
			ops = append(ops, rangeOp(c.groupRange(g)))
		default:
			ops = append(ops, rangeOp(&pb.RangeRequest{Key: []byte(c.key(g))}))
		}
	}
	if depth > 1 && len(keys) > 0 && c.rng.IntN(3) == 0 {
		nested := &pb.TxnRequest{Compare: []*pb.Compare{c.compare(c.key(g))}}
		nested.Success = []*pb.RequestOp{putOp(groupKey(g, keys[0]), value+"n")}
		nested.Failure = []*pb.RequestOp{rangeOp(c.groupRange(g))}
		ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: nested}})
	}
	return ops
}

// rangeAt reads a key or the group at a past revision: often the newest
// compaction's own (the lowest it leaves readable) or the one below it,
// else any revision seen.
func (c *client) rangeAt(g int, key string) *pb.RangeRequest {
	r := &pb.RangeRequest{Key: []byte(key)}
	if c.rng.IntN(2) == 0 {
		r = c.groupRange(g)
	}
	seen := max(c.w.checks.maxRev, 1)
	compacted := c.w.checks.compactRev()
	switch x := c.rng.IntN(4); {
	case x == 0 && compacted > 1:
		r.Revision = compacted - 1
	case x == 1 && compacted > 0:
		r.Revision = compacted
	default:
		r.Revision = 1 + c.rng.Int64N(seen)
	}
	r.Serializable = c.rng.IntN(4) == 0
	return r
}

// compaction compacts at a recent revision, physically or not.
func (c *client) compaction() *pb.CompactionRequest {
	seen := c.w.checks.maxRev
	return &pb.CompactionRequest{Revision: max(seen-c.rng.Int64N(c.w.settings.CompactLag+1), 1), Physical: c.rng.IntN(2) == 0}
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
	l := c.loginFor(op)
	op.Member, op.Call, op.User, op.Epoch = c.target, w.now, l.user, w.epoch
	if op.Kind == opCompact {
		w.checks.scanHistory() // before the compaction takes what the checks need
	}
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
	call := m.unaryCall(requestRPC(op.Req))
	if r := op.Req.Range; r != nil && streamable(r) && c.rng.IntN(rangeStreamOdds) == 0 {
		op.Stream, call = true, m.rangeStreamCall(r)
	}
	w.after(c.latency(), m.event(func() {
		w.runAs(m, l, call, func(r core.Response) {
			w.after(c.latency(), func() { finish(&r) })
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
	case errors.Is(resp.Err, rpctypes.ErrGRPCPermissionDenied):
		// Refused for the user's permissions (checks_perm.go judges
		// whether rightly): it did nothing.
		op.Failed, op.Denied = true, true
	case errors.Is(resp.Err, rpctypes.ErrGRPCNoSpace) && costs(op.Req):
		// The space quota is used up (a NOSPACE alarm): the write did not
		// happen, until an operator recovers.
		op.Failed = true
		w.stats.OpsFailed++
	case errors.Is(resp.Err, errNotSent) || authRefused(resp.Err):
		// Refused for its credentials before it did anything: log in
		// again, as clientv3 does.
		op.Failed = true
		w.stats.OpsFailed++
	case errors.Is(resp.Err, errRefused):
		// The member refused the connection: nothing was sent.
		op.Failed = true
		w.stats.OpsFailed++
		c.target = c.pick()
	case errors.Is(resp.Err, rpctypes.ErrGRPCNotSupportedForLearner):
		// A learner serves no such call, as etcd's: clientv3 moves to
		// another endpoint.
		op.Failed = true
		w.stats.OpsFailed++
		c.target = c.pick()
	case resp.Err != nil && legalError(op, resp.Err) != "":
		op.Err = legalError(op, resp.Err)
		w.stats.OpsFailed++
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

// loginFor is the session op is sent with: root's for a compaction,
// which etcd allows only an administrator, the app user's or now and
// then the limited user's for the rest.
func (c *client) loginFor(op *Op) *login {
	switch {
	case op.Kind == opCompact:
		return c.root
	case c.limited != nil && c.limitedRng.IntN(permShare) == 0:
		return c.limited
	}
	return c.login
}

// definite errors say the request had no effect.
func definite(err error) bool {
	if errors.Is(err, errRefused) {
		return true
	}
	for _, e := range []error{rpctypes.ErrGRPCTimeout, rpctypes.ErrGRPCTimeoutDueToLeaderFail, rpctypes.ErrGRPCNoLeader, rpctypes.ErrGRPCLeaderChanged, rpctypes.ErrGRPCStopped} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

// legalError names the legal error err is for op, if it is one: the
// checkers judge whether it was right.
func legalError(op *Op, err error) string {
	switch {
	case (op.Kind == opRangeAt || op.Kind == opCompact) && errors.Is(err, rpctypes.ErrGRPCCompacted):
		return errKindCompacted
	case (op.Kind == opRangeAt || op.Kind == opCompact) && errors.Is(err, rpctypes.ErrGRPCFutureRev):
		return errKindFutureRev
	case op.Kind == opPut && errors.Is(err, rpctypes.ErrGRPCKeyNotFound):
		return errKindKeyNotFound
	}
	return ""
}

// decode keeps the response and learns the mod revisions it shows, for
// the client's next compares.
func (c *client) decode(op *Op, resp *core.Response) {
	op.Resp = resp.Msg
	kvs := func(rr *pb.RangeResponse) {
		for _, k := range rr.Kvs {
			c.lastMod[string(k.Key)] = k.ModRevision
		}
	}
	switch r := resp.Msg.(type) {
	case *pb.PutResponse:
		op.Rev = r.Header.Revision
		c.lastMod[string(op.Req.Put.Key)] = op.Rev
	case *pb.RangeResponse:
		op.Rev = r.Header.Revision
		if op.Kind == opRangeAt {
			return
		}
		kvs(r)
		if len(r.Kvs) == 0 && len(op.Req.Range.RangeEnd) == 0 && !op.Req.Range.CountOnly {
			c.lastMod[string(op.Req.Range.Key)] = 0
		}
	case *pb.DeleteRangeResponse:
		op.Rev = r.Header.Revision
		if len(op.Req.DeleteRange.RangeEnd) == 0 {
			c.lastMod[string(op.Req.DeleteRange.Key)] = 0
		}
	case *pb.TxnResponse:
		op.Rev = r.Header.Revision
		if op.Kind != opCAS {
			return
		}
		key := string(op.Req.Txn.Compare[0].Key)
		if r.Succeeded {
			c.lastMod[key] = op.Rev
		} else if rr := r.Responses[0].GetResponseRange(); rr != nil {
			kvs(rr)
			if len(rr.Kvs) == 0 {
				c.lastMod[key] = 0
			}
		}
	case *pb.CompactionResponse:
		op.Rev = r.Header.Revision
	}
}
