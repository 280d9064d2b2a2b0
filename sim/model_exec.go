package sim

import (
	"bytes"
	"cmp"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
)

type kvpb = mvccpb.KeyValue

// stepModel returns the states op may leave s in: none if op cannot have
// happened in s. An op with an unknown outcome may or may not have taken
// effect; a write that fails with ErrKeyNotFound shows its key missing.
func stepModel(s groupState, op *Op) []groupState {
	if op.Kind == opRestore {
		return []groupState{*op.Restored}
	}
	if op.Unknown {
		return append([]groupState{s}, applyUnknown(s, op)...)
	}
	if op.Err == errKindKeyNotFound {
		if op.Req.Put == nil || s.keys[keyIndex(string(op.Req.Put.Key))].exists {
			return nil
		}
		return []groupState{s}
	}
	x := &modelRun{s: s, before: s, rev: op.Rev, group: op.Group}
	if !x.request(op.Req, op.Resp) {
		return nil
	}
	if x.changed && op.Rev <= s.floor || op.Rev < s.floor {
		return nil
	}
	x.s.floor = op.Rev
	return []groupState{x.s}
}

// applyUnknown is every state a write with an unknown outcome may have
// left if it took effect: one per way its compares nobody could decide
// may have gone.
func applyUnknown(s groupState, op *Op) []groupState {
	var out []groupState
	var try func(choices []bool)
	try = func(choices []bool) {
		x := &modelRun{s: s, before: s, rev: -1, group: op.Group, choices: choices}
		ok := x.request(op.Req, nil)
		if x.undecided {
			try(append(slices.Clone(choices), false))
			try(append(slices.Clone(choices), true))
			return
		}
		if ok && x.changed {
			out = append(out, x.s)
		}
	}
	try(nil)
	return out
}

// modelRun runs one request on a model state, checking its response (nil:
// the outcome is unknown, and the request runs at an unknown revision).
type modelRun struct {
	s      groupState
	before groupState // the state compares see: before the request
	rev    int64      // -1: unknown
	group  int
	// changed reports whether the request wrote anything.
	changed bool
	// choices decide, in order, compares the state cannot decide, for an
	// unknown outcome; undecided is set when one more was needed.
	choices   []bool
	used      int
	undecided bool
}

// as returns m as a T; a nil m (no response) is the zero T and true.
func as[T proto.Message](m proto.Message) (T, bool) {
	var zero T
	if m == nil {
		return zero, true
	}
	t, ok := m.(T)
	return t, ok
}

func (x *modelRun) request(r core.Request, resp proto.Message) bool {
	switch {
	case r.Put != nil:
		pr, ok := as[*pb.PutResponse](resp)
		return ok && x.put(r.Put, pr)
	case r.Range != nil:
		rr, ok := as[*pb.RangeResponse](resp)
		return ok && x.rangeKeys(r.Range, rr)
	case r.DeleteRange != nil:
		dr, ok := as[*pb.DeleteRangeResponse](resp)
		return ok && x.del(r.DeleteRange, dr)
	case r.Txn != nil:
		tr, ok := as[*pb.TxnResponse](resp)
		return ok && x.txn(r.Txn, tr)
	}
	return false
}

func (x *modelRun) requestOp(o *pb.RequestOp, resp *pb.ResponseOp) bool {
	var m proto.Message
	if resp != nil {
		if m = responseOf(resp); m == nil {
			return false
		}
	}
	return x.request(requestOf(o), m)
}

// keysOf are the model's key indexes a key or range covers: ranges are
// always a whole group.
func keysOf(key, end []byte) []int {
	if len(end) == 0 {
		return []int{keyIndex(string(key))}
	}
	return []int{0, 1, 2}
}

func (x *modelRun) put(p *pb.PutRequest, r *pb.PutResponse) bool {
	i := keyIndex(string(p.Key))
	k := x.s.keys[i]
	if (p.IgnoreValue || p.IgnoreLease) && !k.exists {
		return false // refused with ErrKeyNotFound: no success, no effect
	}
	if r != nil && p.PrevKv {
		if k.exists != (r.PrevKv != nil) || k.exists && !matchKV(&x.s.keys[i], r.PrevKv, x.rev, false) {
			return false
		}
	} else if r != nil && r.PrevKv != nil {
		return false
	}
	value := string(p.Value)
	if p.IgnoreValue {
		value = k.value
	}
	put(&x.s, string(p.Key), value, x.rev)
	x.changed = true
	return true
}

func (x *modelRun) rangeKeys(q *pb.RangeRequest, r *pb.RangeResponse) bool {
	return r == nil || checkRange(&x.s, x.group, keysOf(q.Key, q.RangeEnd), q, r, x.rev)
}

func (x *modelRun) del(d *pb.DeleteRangeRequest, r *pb.DeleteRangeResponse) bool {
	var gone []int
	for _, i := range keysOf(d.Key, d.RangeEnd) {
		if x.s.keys[i].exists {
			gone = append(gone, i)
		}
	}
	if r != nil {
		if r.Deleted != int64(len(gone)) || !d.PrevKv && len(r.PrevKvs) != 0 || d.PrevKv && len(r.PrevKvs) != len(gone) {
			return false
		}
		for j, kv := range r.PrevKvs {
			if string(kv.Key) != groupKey(x.group, gone[j]) || !matchKV(&x.s.keys[gone[j]], kv, x.rev, false) {
				return false
			}
		}
	}
	for _, i := range gone {
		x.s.keys[i] = keyState{}
	}
	x.changed = x.changed || len(gone) > 0
	return true
}

func (x *modelRun) txn(t *pb.TxnRequest, r *pb.TxnResponse) bool {
	holds, known := x.compares(t.Compare)
	var succeeded bool
	switch {
	case r != nil:
		succeeded = r.Succeeded
		if known && holds != succeeded {
			return false
		}
		if succeeded && !known {
			x.learn(t.Compare)
		}
	case known:
		succeeded = holds
	case x.used < len(x.choices):
		succeeded = x.choices[x.used]
		x.used++
	default:
		x.undecided = true
		return false
	}
	ops := t.Failure
	if succeeded {
		ops = t.Success
	}
	if r != nil && len(r.Responses) != len(ops) {
		return false
	}
	for i, o := range ops {
		var sub *pb.ResponseOp
		if r != nil {
			sub = r.Responses[i]
		}
		if !x.requestOp(o, sub) {
			return false
		}
	}
	return true
}

// compares evaluates a transaction's compares on the state before it:
// whether they all hold, and whether the state decides it (a revision an
// unknown write left open may not).
func (x *modelRun) compares(cs []*pb.Compare) (holds, known bool) {
	known = true
	for _, c := range cs {
		h, k := x.compare(c)
		if k && !h {
			return false, true
		}
		known = known && k
	}
	return true, known
}

func (x *modelRun) compare(c *pb.Compare) (holds, known bool) {
	k := x.before.keys[keyIndex(string(c.Key))]
	if c.Target == pb.Compare_VALUE {
		if !k.exists {
			return false, true // a missing key has no value to compare, as in etcd
		}
		return compareResult(c.Result, bytes.Compare([]byte(k.value), c.GetValue())), true
	}
	var v, low int64
	want := compareValueInt(c)
	switch {
	case !k.exists:
	case c.Target == pb.Compare_VERSION:
		v = k.version
	case c.Target == pb.Compare_CREATE:
		v, low = k.create, k.createLow
	case c.Target == pb.Compare_MOD:
		v, low = k.mod, k.modLow
	}
	if v >= 0 {
		return compareResult(c.Result, cmp.Compare(v, want)), true
	}
	return compareUnknown(c.Result, low, want)
}

// compareUnknown compares an unknown revision, somewhere above low, with
// want: known only where every revision above low gives the same answer.
func compareUnknown(res pb.Compare_CompareResult, low, want int64) (holds, known bool) {
	switch res {
	case pb.Compare_EQUAL:
		return false, want <= low
	case pb.Compare_NOT_EQUAL:
		return true, want <= low
	case pb.Compare_GREATER:
		return true, want <= low
	case pb.Compare_LESS:
		return false, want <= low+1
	}
	return false, false
}

func compareValueInt(c *pb.Compare) int64 {
	switch c.Target {
	case pb.Compare_VERSION:
		return c.GetVersion()
	case pb.Compare_CREATE:
		return c.GetCreateRevision()
	case pb.Compare_MOD:
		return c.GetModRevision()
	}
	return c.GetLease()
}

func compareResult(res pb.Compare_CompareResult, c int) bool {
	switch res {
	case pb.Compare_EQUAL:
		return c == 0
	case pb.Compare_NOT_EQUAL:
		return c != 0
	case pb.Compare_GREATER:
		return c > 0
	case pb.Compare_LESS:
		return c < 0
	}
	return false
}

// learn fills in the revisions a transaction that succeeded on a compare
// for equality reveals.
func (x *modelRun) learn(cs []*pb.Compare) {
	for _, c := range cs {
		k := &x.s.keys[keyIndex(string(c.Key))]
		if c.Result != pb.Compare_EQUAL || !k.exists {
			continue
		}
		switch want := compareValueInt(c); {
		case c.Target == pb.Compare_MOD && k.mod < 0 && want > k.modLow:
			k.mod = want
		case c.Target == pb.Compare_CREATE && k.create < 0 && want > k.createLow:
			k.create = want
		}
	}
}

// matchKV checks a key-value a read returned against the model's key,
// learning the revisions an unknown write left open. rev (if known)
// bounds the revisions.
func matchKV(k *keyState, got *kvpb, rev int64, keysOnly bool) bool {
	switch {
	case !k.exists, got.Version != k.version, got.Lease != 0, rev > 0 && got.ModRevision > rev:
		return false
	case keysOnly && len(got.Value) != 0, !keysOnly && string(got.Value) != k.value:
		return false
	}
	if !learnRev(&k.mod, k.modLow, got.ModRevision) {
		return false
	}
	return learnRev(&k.create, k.createLow, got.CreateRevision)
}

func learnRev(v *int64, low, got int64) bool {
	if *v >= 0 {
		return *v == got
	}
	if got <= low {
		return false
	}
	*v = got
	return true
}

// checkRange checks a range response over keys idx of group g against
// the model: count, limit and more, keys-only and count-only, and the
// order asked for (equal sort keys in any order, as etcd's unstable
// sort leaves them).
func checkRange(s *groupState, g int, idx []int, q *pb.RangeRequest, r *pb.RangeResponse, rev int64) bool {
	var exist []int
	for _, i := range idx {
		if s.keys[i].exists {
			exist = append(exist, i)
		}
	}
	if r.Count != int64(len(exist)) {
		return false
	}
	if q.CountOnly {
		return len(r.Kvs) == 0 && !r.More
	}
	// With no sort order but a sort target, etcd takes the first limit+1
	// keys by key, sorts those ascending, and cuts to the limit.
	pool := exist
	if q.SortOrder == pb.RangeRequest_NONE && q.SortTarget != pb.RangeRequest_KEY && q.Limit > 0 && int64(len(pool)) > q.Limit+1 {
		pool = pool[:q.Limit+1]
	}
	want, more := len(exist), false
	if q.Limit > 0 && int64(want) > q.Limit {
		want, more = int(q.Limit), true
	}
	if len(r.Kvs) != want || r.More != more {
		return false
	}
	var got []int
	for _, kv := range r.Kvs {
		i := keyIndex(string(kv.Key))
		if string(kv.Key) != groupKey(g, i) || !slices.Contains(pool, i) || slices.Contains(got, i) || !matchKV(&s.keys[i], kv, rev, q.KeysOnly) {
			return false
		}
		got = append(got, i)
	}
	order := sortOrder(q)
	for j := 1; j < len(got); j++ {
		if order(s, got[j], got[j-1]) < 0 {
			return false
		}
	}
	for _, i := range pool {
		if len(got) > 0 && !slices.Contains(got, i) && order(s, i, got[len(got)-1]) < 0 {
			return false // a key the limit cut comes before one it kept
		}
	}
	return true
}

// sortOrder compares two of a state's keys as the range's sort asks;
// a revision the model does not know compares equal to anything.
func sortOrder(q *pb.RangeRequest) func(s *groupState, a, b int) int {
	desc := q.SortOrder == pb.RangeRequest_DESCEND
	by := func(s *groupState, a, b int) int {
		ka, kb := s.keys[a], s.keys[b]
		switch q.SortTarget {
		case pb.RangeRequest_VERSION:
			return cmp.Compare(ka.version, kb.version)
		case pb.RangeRequest_CREATE:
			return knownCompare(ka.create, kb.create)
		case pb.RangeRequest_MOD:
			return knownCompare(ka.mod, kb.mod)
		case pb.RangeRequest_VALUE:
			return cmp.Compare(ka.value, kb.value)
		}
		return cmp.Compare(a, b)
	}
	if q.SortOrder == pb.RangeRequest_NONE {
		desc = false
	}
	return func(s *groupState, a, b int) int {
		if desc {
			return by(s, b, a)
		}
		return by(s, a, b)
	}
}

func knownCompare(a, b int64) int {
	if a < 0 || b < 0 {
		return 0
	}
	return cmp.Compare(a, b)
}

// put applies a write at rev (-1: unknown, above the current floor).
func put(s *groupState, key, value string, rev int64) {
	k := &s.keys[keyIndex(key)]
	if k.exists {
		k.version++
	} else {
		*k = keyState{exists: true, version: 1, create: rev, createLow: s.floor}
	}
	k.value, k.mod, k.modLow = value, rev, s.floor
}
