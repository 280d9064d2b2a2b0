package sim

import (
	"bytes"
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// The permission checker: no request succeeds without the permissions
// etcd 3.7.3 checks for it, and none is refused that every auth state it
// could have met allows.
//
// It learns the auth states as the members apply them: after every
// entry a member applies, after a snapshot it installs and when it
// starts, it notes the member's auth store, by position (its revision,
// which every change bumps, and whether auth is on, which enabling
// leaves alone). The members apply the same changes in the same order,
// so a position names one state everywhere; each member's samples say
// which states were in force there, when.
//
// A request that succeeded on member m met one of the states m had
// between its call and its answer; a linearizable one (a write, checked
// again when applied; a read, which etcd checks once its read index is
// applied) met one no older than any change some member had applied
// before the call, since that change was committed. A success is a
// violation only if no such state permits it; a refusal only if every
// state m had meanwhile permits it. The rules are etcd's own
// (server/auth/store.go's isOpPermitted, apply/auth.go's checkPutAuth,
// checkTxnPermission): written here again, not borrowed from core.

// permPos is a position in the auth history: revision, then enabled.
type permPos struct {
	rev     uint64
	enabled bool
}

func (p permPos) less(q permPos) bool {
	return p.rev < q.rev || p.rev == q.rev && !p.enabled && q.enabled
}

// permState is an auth store as the checker reads it.
type permState struct {
	pos   permPos
	roles map[string][]string             // user -> roles
	perms map[string][]*authpb.Permission // role -> permissions
}

// permSample is a member's auth state from a moment on.
type permSample struct {
	at    int64
	state *permState
}

type permChecker struct {
	w *World
	// byMember are each member's samples, in time order.
	byMember map[int][]permSample
	// newest is the newest position any member had applied, from a
	// moment on, in time order.
	newest []permSample
	states map[permPos]*permState
	// leaseOps are the lease requests to judge once the history is
	// known (checks_leaseperm.go).
	leaseOps []*leasePermOp
}

func newPermChecker(w *World) *permChecker {
	return &permChecker{w: w, byMember: map[int][]permSample{}, states: map[permPos]*permState{}}
}

// sample notes m's auth state now, if it changed.
func (p *permChecker) sample(m *member) {
	if !p.w.authOn || m.node == nil {
		return
	}
	pos := permPos{rev: m.node.AuthRevision(), enabled: m.node.AuthEnabled()}
	ss := p.byMember[m.idx]
	if n := len(ss); n > 0 && ss[n-1].state.pos == pos {
		return
	}
	st, ok := p.states[pos]
	if !ok {
		var err error
		if st, err = p.read(m, pos); err != nil {
			p.w.checks.fail("permissions: reading %s's auth store: %v", m.name, err)
			return
		}
		p.states[pos] = st
	}
	p.byMember[m.idx] = append(ss, permSample{at: p.w.now, state: st})
	if n := len(p.newest); n == 0 || p.newest[n-1].state.pos.less(pos) {
		p.newest = append(p.newest, permSample{at: p.w.now, state: st})
	}
}

func (p *permChecker) read(m *member, pos permPos) (*permState, error) {
	a, err := m.node.AuthCopy()
	if err != nil {
		return nil, err
	}
	st := &permState{pos: pos, roles: map[string][]string{}, perms: map[string][]*authpb.Permission{}}
	for _, u := range a.UserList() {
		st.roles[u], _ = a.UserGet(u)
	}
	for _, r := range a.RoleList() {
		st.perms[r], _ = a.RoleGet(r)
	}
	return st, nil
}

// met are the states op may have met on its member.
func (p *permChecker) met(op *Op, linearizable bool) []*permState {
	ss := p.byMember[op.Member]
	// The state in force at the call, and every one after it until the
	// answer.
	i := sort.Search(len(ss), func(i int) bool { return ss[i].at > op.Call })
	var floor permPos
	if linearizable {
		j := sort.Search(len(p.newest), func(j int) bool { return p.newest[j].at >= op.Call })
		if j > 0 {
			floor = p.newest[j-1].state.pos
		}
	}
	var out []*permState
	for k := max(i-1, 0); k < len(ss) && ss[k].at <= op.Return; k++ {
		if !ss[k].state.pos.less(floor) {
			out = append(out, ss[k].state)
		}
	}
	return out
}

// op judges a finished client operation.
func (p *permChecker) op(op *Op) {
	switch {
	case !p.w.authOn || op.Unknown || op.Failed && !op.Denied:
	case op.Denied:
		p.denied(op, op.String())
	default:
		p.succeeded(op, op.String(), op.linearizable() || op.Kind == opRangeAt && !op.Req.Range.Serializable)
	}
}

// watchCreated judges a watch's creation, or its refusal, on c's
// member between asking and the answer: it needs read permission over
// the watched keys, checked where the watch is created.
func (p *permChecker) watchCreated(c *watchClient, denied bool) {
	if !p.w.authOn {
		return
	}
	op := &Op{Member: c.member.idx, Call: c.askedAt, Return: p.w.now, User: c.login.user,
		Req: core.Request{Range: &pb.RangeRequest{Key: []byte(c.key), RangeEnd: []byte(c.end)}}}
	desc := fmt.Sprintf("w%d watch [%s,%s) @%s [%d,%d]", c.id, c.key, c.end, c.member.name, op.Call, op.Return)
	if denied {
		p.denied(op, desc)
		return
	}
	p.succeeded(op, desc, false)
}

// succeeded judges a request that succeeded: wrong if no state it could
// have met allows it.
func (p *permChecker) succeeded(op *Op, desc string, linearizable bool) {
	states := p.met(op, linearizable)
	for _, st := range states {
		if st.allows(op.User, op.Req) == "" {
			return
		}
	}
	if len(states) == 0 {
		return // the member's states are not known: nothing to judge
	}
	p.w.checks.fail("permissions: %s as %s succeeded, but no auth state %s could have met allowed it: %s",
		desc, op.User, p.w.members[op.Member].name, p.reasons(op, states))
}

// denied judges a refusal: wrong if every state the member had from the
// call to the answer allows the request.
func (p *permChecker) denied(op *Op, desc string) {
	states := p.met(op, false)
	for _, st := range states {
		if st.allows(op.User, op.Req) != "" {
			return
		}
	}
	if len(states) == 0 {
		return
	}
	p.w.checks.fail("permissions: %s as %s was refused, but every auth state %s had meanwhile (revisions %d to %d) allowed it",
		desc, op.User, p.w.members[op.Member].name, states[0].pos.rev, states[len(states)-1].pos.rev)
}

func (p *permChecker) reasons(op *Op, states []*permState) string {
	var b bytes.Buffer
	for i, st := range states {
		if i == 4 {
			fmt.Fprintf(&b, "; and %d more", len(states)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "at auth revision %d %s", st.pos.rev, st.allows(op.User, op.Req))
	}
	return b.String()
}

// allows says why the state refuses user's request ("" if it allows it),
// by etcd's rules: with auth on, a known user with the root role may do
// anything; otherwise a range, a put or a delete needs the permission of
// its kind over all its keys, prev_kv read permission too, a transaction
// read permission for its compares and whatever each op of both branches
// needs, nested transactions included, a compaction the root role.
// A put's lease is judged with the lease requests
// (checks_leaseperm.go).
func (st *permState) allows(user string, r core.Request) string {
	roles, why, decided := st.rolesOf(user)
	if decided {
		return why
	}
	return st.allowsOp(user, roles, r)
}

// rolesOf is where every judgement starts: with auth off or for a user
// with the root role, the request is allowed; without a user, or with
// one that does not exist, it is refused (why says so); otherwise the
// user's roles decide (decided is false).
func (st *permState) rolesOf(user string) (roles []string, why string, decided bool) {
	if !st.pos.enabled {
		return nil, "", true
	}
	roles, ok := st.roles[user]
	switch {
	case user == "":
		return nil, "no user", true
	case !ok:
		return nil, fmt.Sprintf("user %s does not exist", user), true
	case hasRootRole(roles):
		return nil, "", true
	}
	return roles, "", false
}

func hasRootRole(roles []string) bool {
	for _, r := range roles {
		if r == "root" {
			return true
		}
	}
	return false
}

func (st *permState) allowsOp(user string, roles []string, r core.Request) string {
	need := func(key, end []byte, write bool) string {
		if st.covers(roles, key, end, write) {
			return ""
		}
		kind := "read"
		if write {
			kind = "write"
		}
		return fmt.Sprintf("%s may not %s [%q, %q) (roles %v)", user, kind, key, end, roles)
	}
	first := func(why ...string) string {
		for _, w := range why {
			if w != "" {
				return w
			}
		}
		return ""
	}
	switch {
	case r.Range != nil:
		return need(r.Range.Key, r.Range.RangeEnd, false)
	case r.Put != nil:
		why := need(r.Put.Key, nil, true)
		if r.Put.PrevKv {
			why = first(why, need(r.Put.Key, nil, false))
		}
		return why
	case r.DeleteRange != nil:
		why := need(r.DeleteRange.Key, r.DeleteRange.RangeEnd, true)
		if r.DeleteRange.PrevKv {
			why = first(why, need(r.DeleteRange.Key, r.DeleteRange.RangeEnd, false))
		}
		return why
	case r.Txn != nil:
		for _, c := range r.Txn.Compare {
			if why := need(c.Key, c.RangeEnd, false); why != "" {
				return why
			}
		}
		for _, o := range append(append([]*pb.RequestOp(nil), r.Txn.Success...), r.Txn.Failure...) {
			if why := st.allowsOp(user, roles, requestOf(o)); why != "" {
				return why
			}
		}
	case r.Compaction != nil:
		return fmt.Sprintf("%s has no root role for a compaction (roles %v)", user, roles)
	}
	return ""
}

// covers reports whether the roles' permissions of the kind together
// cover the keys [key, end): end empty is key alone, "\x00" every key
// from key on. A range that ends at or before its key is not judged.
func (st *permState) covers(roles []string, key, end []byte, write bool) bool {
	open := len(end) == 1 && end[0] == 0
	if len(end) == 0 {
		end = append(bytes.Clone(key), 0)
	} else if !open && bytes.Compare(end, key) <= 0 {
		return true
	}
	// Walk from key through permissions that reach past where the walk
	// is, until past end.
	at := key
	for {
		next, reached := at, false
		for _, role := range roles {
			for _, pm := range st.perms[role] {
				if !permKind(pm.PermType, write) {
					continue
				}
				pOpen := len(pm.RangeEnd) == 1 && pm.RangeEnd[0] == 0
				pEnd := pm.RangeEnd
				if len(pEnd) == 0 {
					pEnd = append(bytes.Clone(pm.Key), 0)
				}
				if bytes.Compare(pm.Key, at) > 0 || !pOpen && bytes.Compare(pEnd, at) <= 0 {
					continue
				}
				if pOpen {
					return true
				}
				if bytes.Compare(pEnd, next) > 0 {
					next, reached = pEnd, true
				}
			}
		}
		if !reached {
			return false
		}
		if !open && bytes.Compare(next, end) >= 0 {
			return true
		}
		at = next
	}
}

func permKind(t authpb.Permission_Type, write bool) bool {
	switch t {
	case authpb.READWRITE:
		return true
	case authpb.WRITE:
		return write
	}
	return !write
}
