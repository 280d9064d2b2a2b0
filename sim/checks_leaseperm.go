package sim

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/detcd/detcd/core"
)

// Lease requests under auth, by etcd 3.7.3's rules (etcdserver/
// v3_server.go's checkLeaseRenew, checkLeaseTimeToLive,
// checkLeaseLeases; apply/auth.go's checkLeasePuts), written here again:
// with auth on, a known user with the root role may do anything;
// otherwise granting a lease, or asking its TTL without its keys, needs
// only a user; revoking a lease or keeping it alive needs write
// permission on every key attached to it, asking its TTL with its keys
// read permission on each, listing the leases read permission on every
// key of every lease; a put with a lease needs write permission on its
// key and on every key already attached to the lease.
//
// Which keys a lease holds on the member that checks is not the
// checker's to read: it takes them from the key space's history (each
// put names its lease; a later put or a delete of the key detaches it)
// at every revision the member had between the call and the answer, and
// judges as checks_perm.go does: a success is wrong if no auth state the
// member had meanwhile allows it with any of those key sets; a refusal
// if every one allows it with every one.

// leasePermOp is a lease request to judge at the end of the run, once
// the history is known.
type leasePermOp struct {
	op *Op
	// inc is the member's incarnation at the call; revFrom and revTo its
	// revisions at the call and the answer.
	inc            int
	revFrom, revTo int64
}

// leaseCall notes a lease request l sends to m, with auth on (nil
// otherwise, or if m is down).
func (p *permChecker) leaseCall(m *member, l *login, r core.Request) *leasePermOp {
	if !p.w.authOn || l == nil || m.node == nil {
		return nil
	}
	return &leasePermOp{op: &Op{Member: m.idx, Call: p.w.now, User: l.user, Req: r}, inc: m.inc, revFrom: m.node.Rev()}
}

// leaseAnswered notes the answer: a success or a refusal for the user's
// permissions is judged at the end, if the member ran throughout.
func (p *permChecker) leaseAnswered(lo *leasePermOp, resp *core.Response) {
	if lo == nil || resp == nil {
		return
	}
	m := p.w.members[lo.op.Member]
	if m.node == nil || m.inc != lo.inc {
		return
	}
	lo.op.Return, lo.revTo = p.w.now, m.node.Rev()
	switch {
	case resp.Err == nil:
	case errors.Is(resp.Err, rpctypes.ErrGRPCPermissionDenied):
		lo.op.Failed, lo.op.Denied = true, true
	default:
		return
	}
	p.leaseOps = append(p.leaseOps, lo)
}

// leaseAttach is a key's stay on a lease: from its put at revision from
// until the revision to that detached it (0: never).
type leaseAttach struct {
	key      string
	from, to int64
}

// leaseAttachments are the history's stays of keys on leases, by lease.
func (c *checkers) leaseAttachments() map[int64][]leaseAttach {
	out := map[int64][]leaseAttach{}
	type at struct {
		lease int64
		i     int
	}
	open := map[string]at{}
	start := func(kv *mvccpb.KeyValue) {
		if kv.Lease != 0 {
			out[kv.Lease] = append(out[kv.Lease], leaseAttach{key: string(kv.Key), from: kv.ModRevision})
			open[string(kv.Key)] = at{kv.Lease, len(out[kv.Lease]) - 1}
		}
	}
	keys := make([]string, 0, len(c.hist.base))
	for k := range c.hist.base {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		start(c.hist.base[k])
	}
	for _, ev := range c.hist.events {
		if a, ok := open[string(ev.Kv.Key)]; ok {
			out[a.lease][a.i].to = ev.Kv.ModRevision
			delete(open, string(ev.Kv.Key))
		}
		if ev.Type == mvccpb.PUT {
			start(ev.Kv)
		}
	}
	return out
}

// checkLeasePerms judges the lease requests noted during the run.
func (c *checkers) checkLeasePerms() {
	if len(c.perm.leaseOps) == 0 {
		return
	}
	att := c.leaseAttachments()
	for _, lo := range c.perm.leaseOps {
		if c.hist.base != nil && lo.revFrom < c.hist.baseRev {
			continue // the history before its base is not known
		}
		c.perm.judgeLease(lo, c.keySets(att, lo))
	}
}

// keySets are the sets of keys the lease (every lease, for a listing)
// held at some revision of lo's member between call and answer: at its
// first, and after each attach or detach within. A revoke that succeeded
// was checked before it deleted the keys.
func (c *checkers) keySets(att map[int64][]leaseAttach, lo *leasePermOp) [][]string {
	var ids []int64
	switch r := lo.op.Req; {
	case r.LeaseLeases:
		for id := range att {
			ids = append(ids, id)
		}
		slices.Sort(ids)
	case r.Put != nil:
		ids = []int64{r.Put.Lease}
	case r.LeaseRevoke != nil:
		ids = []int64{r.LeaseRevoke.ID}
	case r.LeaseKeepAlive != nil:
		ids = []int64{r.LeaseKeepAlive.ID}
	case r.LeaseTimeToLive != nil && r.LeaseTimeToLive.Keys:
		ids = []int64{r.LeaseTimeToLive.ID}
	default:
		return [][]string{nil}
	}
	hi := lo.revTo
	if lo.op.Req.LeaseRevoke != nil && !lo.op.Denied {
		for _, a := range att[ids[0]] {
			if a.to > lo.revFrom && a.to <= hi {
				hi = a.to - 1
			}
		}
	}
	revs := []int64{lo.revFrom}
	for _, id := range ids {
		for _, a := range att[id] {
			for _, r := range []int64{a.from, a.to} {
				if r > lo.revFrom && r <= hi {
					revs = append(revs, r)
				}
			}
		}
	}
	var sets [][]string
	for _, rev := range revs {
		var keys []string
		for _, id := range ids {
			for _, a := range att[id] {
				if a.from <= rev && (a.to == 0 || rev < a.to) {
					keys = append(keys, a.key)
				}
			}
		}
		sets = append(sets, keys)
	}
	return sets
}

// judgeLease judges one lease request against every auth state its
// member had and every key set it can have met.
func (p *permChecker) judgeLease(lo *leasePermOp, sets [][]string) {
	states := p.met(lo.op, false)
	if len(states) == 0 {
		return
	}
	var why []string
	for _, st := range states {
		for _, keys := range sets {
			reason := st.allowsLease(lo.op.User, lo.op.Req, keys)
			if reason == "" && !lo.op.Denied || reason != "" && lo.op.Denied {
				return
			}
			if reason != "" && len(why) < 4 {
				why = append(why, fmt.Sprintf("at auth revision %d with keys %v %s", st.pos.rev, keys, reason))
			}
		}
	}
	m := p.w.members[lo.op.Member]
	desc := fmt.Sprintf("%s @%s [%d,%d] (revisions %d to %d)", leaseReqString(lo.op.Req), m.name, lo.op.Call, lo.op.Return, lo.revFrom, lo.revTo)
	if lo.op.Denied {
		p.w.checks.fail("permissions: %s as %s was refused, but every auth state and every set of the lease's keys %s had meanwhile allowed it",
			desc, lo.op.User, m.name)
		return
	}
	p.w.checks.fail("permissions: %s as %s succeeded, but no auth state and set of the lease's keys %s could have met allowed it: %s",
		desc, lo.op.User, m.name, strings.Join(why, "; "))
}

// allowsLease says why the state refuses user's lease request while the
// lease (or every lease) holds keys ("" if it allows it).
func (st *permState) allowsLease(user string, r core.Request, keys []string) string {
	roles, why, decided := st.rolesOf(user)
	if decided {
		return why
	}
	write := !r.LeaseLeases && r.LeaseTimeToLive == nil
	if r.Put != nil && !st.covers(roles, r.Put.Key, nil, true) {
		return fmt.Sprintf("%s may not write %q (roles %v)", user, r.Put.Key, roles)
	}
	for _, k := range keys {
		if !st.covers(roles, []byte(k), nil, write) {
			kind := "read"
			if write {
				kind = "write"
			}
			return fmt.Sprintf("%s may not %s %q (roles %v)", user, kind, k, roles)
		}
	}
	return ""
}

// leaseReqString describes a lease request for a failure.
func leaseReqString(r core.Request) string {
	switch {
	case r.LeaseGrant != nil:
		return fmt.Sprintf("lease grant ttl %d", r.LeaseGrant.TTL)
	case r.LeaseRevoke != nil:
		return fmt.Sprintf("lease revoke %x", r.LeaseRevoke.ID)
	case r.LeaseKeepAlive != nil:
		return fmt.Sprintf("lease keep-alive %x", r.LeaseKeepAlive.ID)
	case r.LeaseTimeToLive != nil:
		return fmt.Sprintf("lease time-to-live %x keys=%v", r.LeaseTimeToLive.ID, r.LeaseTimeToLive.Keys)
	case r.LeaseLeases:
		return "lease list"
	case r.Put != nil:
		return fmt.Sprintf("put %s with lease %x", r.Put.Key, r.Put.Lease)
	}
	return "lease request"
}
