package sim

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
)

// checkTimeout bounds porcupine's search per run; past it the result is
// reported as unknown, never as a pass or a hang.
const checkTimeout = 20 * time.Second

// checkers watch the world without changing it: cheap checks run as
// events happen, the expensive ones at the end.
type checkers struct {
	w        *World
	failures []string
	// failed holds each failure once: a check that runs again and again
	// (convergence, each liveness round) reports what it found once.
	failed  map[string]bool
	history []*Op
	// leaders records who led each term.
	leaders map[uint64]uint64
	// tickStalls are the stretches [from, to) in which some member's
	// ticks stopped: a clock jumped back (its ticker waits for the
	// clock to catch up) or it was paused. Lease time runs on ticks.
	tickStalls [][2]int64
	// leaseLog is what the lease checks learn from the log.
	leaseLog leaseLog
	// entries records what was applied at each index, by any member;
	// decoded keeps the requests of recent entries, decoded once for
	// every member that applies them.
	entries map[uint64][32]byte
	decoded [decodedMax]decodedEntry
	// lastRev is each client's newest revision from a linearizable op.
	lastRev map[int]int64
	// maxRev is the newest revision any operation has shown.
	maxRev int64
	// leases are the lease clients' leases; revokedAt when each lease's
	// revoke was first applied by any member.
	leases    []*leaseRecord
	revokedAt map[int64]int64
	// compactions are the compactions that took effect, in order; hist
	// is the key space's history, copied as it was applied.
	compactions []compaction
	hist        history
	// corruptRaised says a CORRUPT alarm was applied (checks_corrupt.go).
	corruptRaised bool
	// perm judges answers by the users' permissions (checks_perm.go).
	perm *permChecker
	// locks are the Lock and Election answers (checks_lock.go).
	locks lockChecks
	// Linearizability is porcupine's verdict: "ok", "illegal", "unknown".
	Linearizability string
	// linInfo is porcupine's account of the check, for WriteHistoryHTML.
	linInfo *porcupine.LinearizationInfo
	// maint is what the maintenance checks keep (checks_maint.go).
	maint maintChecks
	// quorum follows leaders and snapshot transfers (checks_quorum.go).
	quorum quorumCheck
	// snap is what the backup checks keep (checks_snapshot.go).
	snap snapChecks
	// restores are the restores of the whole cluster, in order; pastHist
	// the history of each epoch before the current one (checks_epoch.go);
	// leasesJudged counts the leases of past epochs, judged when theirs
	// ended.
	restores     []restorePoint
	pastHist     []history
	leasesJudged int
}

func newCheckers(w *World) *checkers {
	// A store starts at revision 1, with no events.
	return &checkers{w: w, hist: history{scannedTo: 1}, leaders: map[uint64]uint64{}, entries: map[uint64][32]byte{}, lastRev: map[int]int64{}, revokedAt: map[int64]int64{}, perm: newPermChecker(w)}
}

func (c *checkers) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if c.failed[msg] {
		return
	}
	if c.failed == nil {
		c.failed = map[string]bool{}
	}
	c.failed[msg] = true
	c.failures = append(c.failures, msg)
	c.w.trace.logf(c.w.now, "CHECK FAILED: %s", msg)
	c.w.note(clusterColumn, rowCheck, msg)
}

// observe checks raft safety after a member handled an event: at most one
// leader per term.
func (c *checkers) observe(m *member) {
	if !m.up || m.node == nil {
		return
	}
	if err := m.node.Err(); err != nil {
		if errors.Is(err, core.ErrMemberRemoved) {
			c.w.retire(m)
			return
		}
		c.fail("%s stopped: %v", m.name, err)
		m.crash(false)
		return
	}
	c.observeQuorum(m)
	c.locks.noteApplied(m.node.Rev())
	if m.node.Leader() != m.id {
		return
	}
	term := m.node.Term()
	prev, ok := c.leaders[term]
	if ok && prev != m.id {
		c.fail("two leaders in term %d: m%d and %s", term, prev, m.name)
	}
	if !ok {
		c.w.note(m.idx, rowLeader, fmt.Sprintf("%s leads term %d", m.name, term))
	}
	c.leaders[term] = m.id
}

// applied checks that every member applies the same entry at an index.
func (c *checkers) applied(m *member, index, term uint64, data []byte) {
	c.perm.sample(m)
	if data == nil {
		// A snapshot: its entries were checked where they were applied.
		c.maintApplied(m, index, true, nil)
		c.noteLeaseEntry(m, index, term, true, nil)
		c.snapApplied(m, index)
		return
	}
	sum := entrySum(term, data)
	r := c.decode(index, sum, data)
	c.maintApplied(m, index, false, r)
	c.noteLeaseEntry(m, index, term, len(data) == 0, r)
	c.snapApplied(m, index)
	prev, ok := c.entries[index]
	if ok && prev != sum {
		c.fail("%s applied a different entry at index %d (term %d)", m.name, index, term)
	}
	if !ok {
		c.noteApplied(m, r)
	}
	c.entries[index] = sum
}

// entrySum identifies an entry by its term and data.
func entrySum(term uint64, data []byte) [32]byte {
	h := sha256.New()
	var b [24]byte
	h.Write(strconv.AppendUint(b[:0], term, 10))
	h.Write([]byte{'/'})
	h.Write(data)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// decodedMax bounds the decoded requests the checkers keep: the members
// apply an entry within a few indexes of each other, but for one
// restarting or catching up, which decodes again.
const decodedMax = 1024

// decodedEntry is the request of the entry at index with sum; nil for an
// empty entry or what is not a request.
type decodedEntry struct {
	index uint64
	sum   [32]byte
	r     *pb.InternalRaftRequest
}

// decode returns the request of the entry at index, decoded once for
// every checker and every member that applies the same entry (the
// checkers only read it).
func (c *checkers) decode(index uint64, sum [32]byte, data []byte) *pb.InternalRaftRequest {
	if len(data) == 0 {
		return nil
	}
	d := &c.decoded[index%decodedMax]
	if d.index == index && d.sum == sum {
		return d.r
	}
	r := new(pb.InternalRaftRequest)
	if proto.Unmarshal(data, r) != nil {
		r = nil
	}
	*d = decodedEntry{index: index, sum: sum, r: r}
	return r
}

// op records a finished operation and checks that a client's revisions
// never go backwards across its linearizable operations.
func (c *checkers) op(op *Op) {
	c.history = append(c.history, op)
	c.perm.op(op)
	c.checkEpochRev(op)
	if !op.Unknown && !op.Failed {
		c.maxRev = max(c.maxRev, op.Rev)
	}
	if op.Unknown || op.Failed || op.Err != "" || !op.linearizable() {
		return
	}
	if last := c.lastRev[op.Client]; op.Rev < last {
		c.fail("client %d saw revision %d after %d: %s", op.Client, op.Rev, last, op)
	}
	c.lastRev[op.Client] = max(c.lastRev[op.Client], op.Rev)
}

// converged reports whether every member is up, led, at the same revision
// and holding the same key space.
func (c *checkers) converged() bool {
	ms := c.w.serving()
	if len(ms) == 0 {
		return false
	}
	for _, m := range ms {
		if !m.up || m.paused || m.node.Leader() == 0 {
			return false
		}
	}
	// Everything in the leader's log must be committed and applied
	// everywhere, or acknowledged writes may still be on their way.
	l := ms[0].node.Leader()
	if l == 0 || int(l) > len(c.w.members) {
		return false
	}
	lead := c.w.members[l-1]
	if lead.removed || !lead.up || lead.node.Leader() != lead.id {
		return false
	}
	last := lead.node.LastIndex()
	if lead.node.Commit() != last {
		return false
	}
	rev := ms[0].node.Rev()
	for _, m := range ms {
		if m.node.Rev() != rev || m.node.AppliedIndex() != last {
			return false
		}
	}
	h0, err := ms[0].node.HashKV(0)
	if err != nil {
		return false
	}
	a0 := ms[0].node.AuthHash()
	for _, m := range ms[1:] {
		if a := m.node.AuthHash(); a != a0 {
			c.fail("members at applied index %d disagree on the auth store: %s hash %x, %s hash %x", last, ms[0].name, a0, m.name, a)
			return false
		}
	}
	m0 := memberList(ms[0].node.Members())
	for _, m := range ms[1:] {
		if l := memberList(m.node.Members()); l != m0 {
			c.fail("members at applied index %d disagree on the membership: %s has %s, %s has %s", last, ms[0].name, m0, m.name, l)
			return false
		}
	}
	for _, m := range ms[1:] {
		h, err := m.node.HashKV(0)
		if err != nil || h != h0 {
			if err == nil && h.CompactRev == h0.CompactRev {
				c.fail("members at revision %d disagree: %s hash %x, %s hash %x", rev, ms[0].name, h0.Hash, m.name, h.Hash)
			}
			return false
		}
	}
	return true
}

// memberList is a member list's ids (L: learner), by id.
func memberList(ms []core.Member) string {
	slices.SortFunc(ms, func(a, b core.Member) int { return cmp.Compare(a.ID, b.ID) })
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, " m%d", m.ID)
		if m.IsLearner {
			b.WriteString("L")
		}
	}
	return b.String()
}

func (c *checkers) convergenceReport() string {
	var parts []string
	for _, m := range c.w.live() {
		if m.refused {
			parts = append(parts, m.name+" refused to start")
			continue
		}
		if !m.up {
			parts = append(parts, m.name+" down")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s rev %d applied %d leader %x term %d", m.name, m.node.Rev(), m.node.AppliedIndex(), m.node.Leader(), m.node.Term()))
	}
	return strings.Join(parts, "; ")
}

// final runs the end-of-run checks.
func (c *checkers) final() {
	// The state checks read the first serving member; with none up (a
	// failed liveness phase, or restarts that failed) only the history
	// can be checked.
	if ms := c.w.serving(); len(ms) == 0 || !ms[0].up || ms[0].node == nil {
		c.fail("no member serves at the end of the run: durability, watch and lease checks skipped")
	} else {
		c.scanHistory()
		c.checkDurability()
		c.checkWatches()
		c.checkLeases()
		c.checkLeasePerms()
		c.checkLocks()
	}
	c.checkCompactions()
	c.checkCorruptMissed()
	c.checkNoSpaceWrites()
	c.checkLinearizable()
}

func (c *checkers) checkLinearizable() {
	ops := c.porcupineOps()
	res, info := porcupine.CheckOperationsVerbose(etcdModel(), ops, checkTimeout)
	c.Linearizability = string(res)
	c.linInfo = &info
	switch res {
	case porcupine.Illegal:
		c.fail("history is not linearizable: %s", describeIllegal(info, ops))
	case porcupine.Unknown:
		c.w.trace.logf(c.w.now, "linearizability check timed out after %v: unknown", checkTimeout)
	}
}

// describeIllegal reports, for the first partition that fails, the end of
// its longest linearizable prefix and the operations left out of it: one
// of those is where the history breaks.
func describeIllegal(info porcupine.LinearizationInfo, ops []porcupine.Operation) string {
	for _, p := range info.PartialLinearizationsOperations() {
		var best []porcupine.Operation
		for _, l := range p {
			if len(l) > len(best) {
				best = l
			}
		}
		if len(best) == 0 {
			continue
		}
		g := best[0].Input.(*Op).Group
		in := map[*Op]bool{}
		var tail []string
		for _, o := range best {
			in[o.Input.(*Op)] = true
		}
		for _, o := range best[max(0, len(best)-6):] {
			tail = append(tail, o.Input.(*Op).String())
		}
		var left []string
		total := 0
		for _, o := range ops {
			if op := o.Input.(*Op); op.Group == g {
				total++
				if !in[op] && len(left) < 6 {
					left = append(left, op.String())
				}
			}
		}
		if total == len(best) {
			continue // this partition is fine
		}
		return fmt.Sprintf("group %d: %d of its operations linearize, ending with: %s; left out (first %d): %s",
			g, len(best), strings.Join(tail, "; "), len(left), strings.Join(left, "; "))
	}
	return fmt.Sprintf("%d operations", len(ops))
}

// checkDurability requires every acknowledged write to survive in the
// final state, or to be superseded by a later write; but for one above
// the backup a restore went back to (checks_epoch.go).
func (c *checkers) checkDurability() {
	m := c.w.serving()[0]
	v, _ := m.node.View()
	final := map[string]*kvpb{}
	rr, err := core.ExecuteRange(v, &pb.RangeRequest{Key: []byte("g"), RangeEnd: []byte("h")})
	if err != nil {
		c.fail("durability: reading the final state: %v", err)
		return
	}
	for _, k := range rr.Kvs {
		final[string(k.Key)] = k
	}
	latest := map[string]ackedWrite{}
	deletes := map[string]bool{}
	note := func(key string, wr ackedWrite) {
		if cur, ok := latest[key]; !ok || wr.rev > cur.rev {
			latest[key] = wr
		}
	}
	for _, op := range c.history {
		for _, k := range deletedKeys(op.Group, op.Req) {
			deletes[k] = true
		}
		if !op.Unknown && !op.Failed && op.Err == "" && op.Kind != opCompact && op.Kind != opRangeAt && !c.lostInRestore(op) {
			ackedWrites(op.Req, op.Resp, op.Rev, note)
		}
	}
	keys := make([]string, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		wr := latest[k]
		f, ok := final[k]
		switch {
		case ok && f.ModRevision < wr.rev:
			c.fail("durability: %s acknowledged at revision %d, final state has revision %d", k, wr.rev, f.ModRevision)
		case ok && f.ModRevision == wr.rev && (wr.del || !wr.anyValue && string(f.Value) != wr.value):
			c.fail("durability: %s at revision %d holds %q, acknowledged %q", k, wr.rev, f.Value, wr.value)
		case !ok && !wr.del && !deletes[k]:
			c.fail("durability: %s=%s acknowledged at revision %d is gone and nobody deleted it", k, wr.value, wr.rev)
		}
	}
}

// ackedWrite is an acknowledged write of a key: a put of value (any
// value, for ignore_value) or a delete, at rev.
type ackedWrite struct {
	rev      int64
	value    string
	anyValue bool
	del      bool
}

// ackedWrites reports the writes a request that succeeded made, from its
// response: the branches its transactions took, the keys its deletes
// removed (those prev_kv names, for a range).
func ackedWrites(r core.Request, resp proto.Message, rev int64, note func(string, ackedWrite)) {
	switch {
	case r.Put != nil:
		note(string(r.Put.Key), ackedWrite{rev: rev, value: string(r.Put.Value), anyValue: r.Put.IgnoreValue})
	case r.DeleteRange != nil:
		d, _ := resp.(*pb.DeleteRangeResponse)
		switch {
		case d == nil:
		case len(r.DeleteRange.RangeEnd) == 0 && d.Deleted > 0:
			note(string(r.DeleteRange.Key), ackedWrite{rev: rev, del: true})
		default:
			for _, kv := range d.PrevKvs {
				note(string(kv.Key), ackedWrite{rev: rev, del: true})
			}
		}
	case r.Txn != nil:
		t, _ := resp.(*pb.TxnResponse)
		if t == nil {
			return
		}
		ops := r.Txn.Failure
		if t.Succeeded {
			ops = r.Txn.Success
		}
		for i, o := range ops {
			if i < len(t.Responses) {
				ackedWrites(requestOf(o), responseOf(t.Responses[i]), rev, note)
			}
		}
	}
}

// deletedKeys are the keys a request may delete, in any branch.
func deletedKeys(g int, r core.Request) []string {
	switch {
	case r.DeleteRange != nil && len(r.DeleteRange.RangeEnd) == 0:
		return []string{string(r.DeleteRange.Key)}
	case r.DeleteRange != nil:
		return []string{groupKey(g, 0), groupKey(g, 1), groupKey(g, 2)}
	case r.Txn != nil:
		var out []string
		for _, o := range append(slices.Clone(r.Txn.Success), r.Txn.Failure...) {
			out = append(out, deletedKeys(g, requestOf(o))...)
		}
		return out
	}
	return nil
}

func requestOf(o *pb.RequestOp) core.Request {
	return core.Request{Put: o.GetRequestPut(), Range: o.GetRequestRange(), DeleteRange: o.GetRequestDeleteRange(), Txn: o.GetRequestTxn()}
}

func responseOf(o *pb.ResponseOp) proto.Message {
	switch {
	case o.GetResponsePut() != nil:
		return o.GetResponsePut()
	case o.GetResponseRange() != nil:
		return o.GetResponseRange()
	case o.GetResponseDeleteRange() != nil:
		return o.GetResponseDeleteRange()
	case o.GetResponseTxn() != nil:
		return o.GetResponseTxn()
	}
	return nil
}
