package sim

import (
	"cmp"
	"errors"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
)

// The maintenance checks judge the operators' answers (maintclient.go),
// read-only, with only what stays true under faults, where a partitioned
// member answers from old state and a restarted one from less:
//
//   - HashKV: two answers with the same hash revision and compaction
//     revision carry the same hash, from any members, at any time (the
//     guarantee etcd's corruption check rests on).
//   - Status: the leader it names is a member or none; within one
//     incarnation of a member, its raft term, applied index and revision
//     never go back; the size in use is within the size, and the quota is
//     the configured one.
//   - Alarms: only NOSPACE is ever raised (and CORRUPT by a corruption
//     check, which checks_corrupt.go judges), NOSPACE only in runs with a small
//     quota.
//   - MoveLeader: once answered, its target has led a term no later than
//     the answer's.
//   - LeaseLeases: a member lists every lease whose grant was acknowledged,
//     that it applied before the call was sent and whose revoke it has not
//     applied since (as far as this incarnation of it has seen).
//   - No write with a cost (a put, or a transaction that puts) succeeds at
//     a revision above that of an alarm list that showed NOSPACE unless a
//     disarm may have been applied in between.
//   - Every answer names the member that gave it; an error is one etcd
//     may give for the call; with auth on, the app user's defragment,
//     hash, HashKV, leadership move and snapshot are refused, as etcd's
//     are.
//   - A snapshot's backup: checks_snapshot.go.
//
// The liveness phase adds one more: after the last recovery, a write
// succeeds (World.liveness waits for it).
type maintChecks struct {
	// hashes is the first HashKV answer for each (hash revision,
	// compaction revision).
	hashes map[[2]int64]hashSeen
	// status is the newest status of each member incarnation.
	status map[memberInc]*pb.StatusResponse
	// noSpace are the alarm lists that showed NOSPACE; disarms the
	// deactivations sent.
	noSpace []alarmSeen
	disarms []*disarmSent
	// granted is, per member incarnation, the index at which it applied
	// each lease grant it has not applied a revoke for since.
	granted map[memberInc]map[int64]uint64
}

type memberInc struct{ idx, inc int }

type hashSeen struct {
	hash   uint32
	member string
	at     int64
}

// alarmSeen is an alarm list that showed NOSPACE: the revision it was
// applied at and when it was sent.
type alarmSeen struct {
	rev, sent int64
}

// disarmSent is a deactivation: when it was sent and, if it was, answered.
type disarmSent struct {
	sent, answeredAt int64
}

// maintCall is one operator call, as the checks need it.
type maintCall struct {
	m    *member
	inc  int
	kind maintKind
	sent int64
	// applied is the member's applied index when the call was sent.
	applied uint64
	// target is a leadership move's target; term is the member's raft
	// term when it was sent.
	target, term uint64
	// leases is how many acknowledged grants there were when the call
	// was sent.
	leases int
	// asApp: the call went as the app user, not root.
	asApp bool
	// snapshot collects a Snapshot's stream.
	snapshot *snapshotStream
}

// errLeaderTransferTimeout is etcd's answer to a leadership move that
// took too long, which it does not map to an rpctypes error.
var errLeaderTransferTimeout = status.Error(codes.Unknown, "etcdserver: request timed out, leader transfer took too long")

// maintLegal are the errors any operator call may get: the call timed
// out or its outcome is unknown, the member is stopped, does not serve
// (refused the connection), is a learner, busy, or refused the
// credentials.
var maintLegal = []error{rpctypes.ErrGRPCNotSupportedForLearner, rpctypes.ErrGRPCRequestTooManyRequests, errNotSent, errRefused}

// maintLegalFor are the errors particular calls may get.
var maintLegalFor = map[maintKind][]error{
	maintHashKV:     {rpctypes.ErrGRPCCompacted, rpctypes.ErrGRPCFutureRev},
	maintMoveLeader: {rpctypes.ErrGRPCNotLeader, rpctypes.ErrGRPCBadLeaderTransferee, errLeaderTransferTimeout},
}

// adminOnly are the calls etcd lets only an administrator make (its
// authMaintenanceServer's isPermitted); status and the lists need only a
// user.
var adminOnly = map[maintKind]bool{maintDefragment: true, maintHash: true, maintHashKV: true, maintMoveLeader: true, maintSnapshot: true}

// appAdminOn says whether some auth state the member had between the
// call and its answer let the app user act as an administrator: auth off
// there (a member that had not yet applied its enabling, as one cut off
// from the others), or the app user holding the root role. etcd checks
// these calls against the auth store of the member they reach.
func (c *checkers) appAdminOn(call maintCall) bool {
	op := &Op{Member: call.m.idx, Call: call.sent, Return: c.w.now}
	for _, st := range c.perm.met(op, false) {
		if _, why, decided := st.rolesOf(appUser); decided && why == "" {
			return true
		}
	}
	return false
}

// maintAnswer checks an answer to an operator call.
func (c *checkers) maintAnswer(call maintCall, resp *core.Response) {
	m := call.m
	admin := adminOnly[call.kind]
	switch {
	case call.asApp && admin && resp.Err == nil && !c.appAdminOn(call):
		c.fail("operator: %s on %s succeeded for the app user; etcd allows it only an administrator", maintNames[call.kind], m.name)
		return
	case call.asApp && admin && errors.Is(resp.Err, rpctypes.ErrGRPCPermissionDenied):
		return
	}
	if err := resp.Err; err != nil {
		if !definite(err) || authRefused(err) || isAny(err, maintLegal) || isAny(err, maintLegalFor[call.kind]) {
			return
		}
		c.fail("operator: %s on %s failed: %v", maintNames[call.kind], m.name, err)
		return
	}
	if h := maintHeader(resp.Msg); h != nil && (h.MemberId != m.id || h.ClusterId != m.cfg.ClusterID) {
		c.fail("operator: %s on %s answered as member %x of cluster %x", maintNames[call.kind], m.name, h.MemberId, h.ClusterId)
	}
	same := m.inc == call.inc // the answer came from the incarnation it was sent to
	switch r := resp.Msg.(type) {
	case *pb.StatusResponse:
		if same {
			c.checkStatus(m, call.inc, r)
		}
	case *pb.AlarmResponse:
		c.checkAlarms(m, call.sent, r)
	case *pb.HashKVResponse:
		c.checkHashKV(m, r)
	case *pb.MoveLeaderResponse:
		c.checkMoved(call)
	case *pb.LeaseLeasesResponse:
		if same {
			c.checkLeaseList(call, r)
		}
	case *pb.SnapshotResponse:
		c.checkSnapshot(call)
	}
}

func isAny(err error, errs []error) bool {
	return slices.ContainsFunc(errs, func(e error) bool { return errors.Is(err, e) })
}

// maintHeader is an answer's header; a defragmentation's has none.
func maintHeader(msg proto.Message) *pb.ResponseHeader {
	if h, ok := msg.(interface{ GetHeader() *pb.ResponseHeader }); ok {
		return h.GetHeader()
	}
	return nil
}

func (c *checkers) checkStatus(m *member, inc int, s *pb.StatusResponse) {
	w := c.w
	if s.Leader != 0 && (s.Leader > uint64(len(w.members))) {
		c.fail("operator: %s's status names leader %x, no member", m.name, s.Leader)
	}
	quota := cmp.Or(w.settings.QuotaBytes, core.DefaultQuotaBackendBytes)
	if s.DbSizeInUse > s.DbSize || s.DbSizeQuota != quota {
		c.fail("operator: %s's status: size in use %d, size %d, quota %d (configured %d)", m.name, s.DbSizeInUse, s.DbSize, s.DbSizeQuota, quota)
	}
	key := memberInc{m.idx, inc}
	if c.maint.status == nil {
		c.maint.status = map[memberInc]*pb.StatusResponse{}
	}
	if p := c.maint.status[key]; p != nil && (s.RaftTerm < p.RaftTerm || s.RaftAppliedIndex < p.RaftAppliedIndex || s.Header.Revision < p.Header.Revision) {
		c.fail("operator: %s went back: term %d, applied index %d, revision %d after term %d, applied index %d, revision %d",
			m.name, s.RaftTerm, s.RaftAppliedIndex, s.Header.Revision, p.RaftTerm, p.RaftAppliedIndex, p.Header.Revision)
	}
	c.maint.status[key] = s
}

func (c *checkers) checkAlarms(m *member, sent int64, a *pb.AlarmResponse) {
	noSpace := false
	for _, am := range a.Alarms {
		switch {
		case am.Alarm == pb.AlarmType_CORRUPT && c.corruptRaised:
			// Raised by a corruption check; checks_corrupt.go judged it.
		case am.Alarm != pb.AlarmType_NOSPACE:
			c.fail("operator: %s lists alarm %s of m%d", m.name, am.Alarm, am.MemberID)
		case c.w.settings.QuotaBytes == 0:
			c.fail("operator: %s lists NOSPACE for m%d with etcd's default quota", m.name, am.MemberID)
		}
		noSpace = noSpace || am.Alarm == pb.AlarmType_NOSPACE
	}
	if noSpace {
		c.maint.noSpace = append(c.maint.noSpace, alarmSeen{rev: a.Header.GetRevision(), sent: sent})
	}
}

func (c *checkers) checkHashKV(m *member, r *pb.HashKVResponse) {
	key := [2]int64{r.HashRevision, r.CompactRevision}
	if c.maint.hashes == nil {
		c.maint.hashes = map[[2]int64]hashSeen{}
	}
	p, ok := c.maint.hashes[key]
	if !ok {
		c.maint.hashes[key] = hashSeen{hash: r.Hash, member: m.name, at: c.w.now}
		return
	}
	if p.hash != r.Hash && !slices.Contains(hashFlavors(m, r), p.hash) {
		c.fail("operator: HashKV at revision %d (compacted at %d): %s answered %x at %dus, %s %x", r.HashRevision, r.CompactRevision, p.member, p.hash, p.at, m.name, r.Hash)
	}
}

// hashFlavors are the hashes m's data gives at r's revisions in both of
// etcd's flavors (mvcc.KVHash.Alt), when m can still tell: from the hash
// it kept if it compacted at r's revision, else from its view if it has
// not compacted since. Else r's hash alone.
func hashFlavors(m *member, r *pb.HashKVResponse) []uint32 {
	if m.node == nil {
		return []uint32{r.Hash}
	}
	rev, compact := mvcc.Revision(r.HashRevision), mvcc.Revision(r.CompactRevision)
	for _, h := range m.node.CompactionHashes() {
		if h.Rev == rev && h.CompactRev == compact && h.Agrees(r.Hash) {
			return []uint32{h.Hash, h.Alt}
		}
	}
	if v := m.node.HashView(); v.CompactRev() == compact {
		if h, err := v.HashKV(rev); err == nil && h.Agrees(r.Hash) {
			return []uint32{h.Hash, h.Alt}
		}
	}
	return []uint32{r.Hash}
}

// checkMoved: a member answers a leadership move once it led (in its
// term when the call was sent, or later) and has seen the target lead
// since: the target led a term no earlier than that.
func (c *checkers) checkMoved(call maintCall) {
	for term, id := range c.leaders {
		if id == call.target && term >= call.term {
			return
		}
	}
	c.fail("operator: %s moved the leadership to m%d, but m%d led no term from %d on", call.m.name, call.target, call.target, call.term)
}

// maintApplied follows, per member incarnation, the lease grants and
// revokes it applies, for the lease list check; a snapshot replaces what
// the member had, so what it knew is forgotten.
func (c *checkers) maintApplied(m *member, index uint64, snapshot bool, r *pb.InternalRaftRequest) {
	if len(c.w.operators) == 0 || len(c.w.leasers) == 0 {
		return
	}
	key := memberInc{m.idx, m.inc}
	if c.maint.granted == nil {
		c.maint.granted = map[memberInc]map[int64]uint64{}
	}
	if c.maint.granted[key] == nil || snapshot {
		c.maint.granted[key] = map[int64]uint64{}
	}
	if r == nil {
		return
	}
	switch {
	case r.LeaseGrant != nil:
		c.maint.granted[key][r.LeaseGrant.ID] = index
	case r.LeaseRevoke != nil:
		delete(c.maint.granted[key], r.LeaseRevoke.ID)
	}
}

// checkLeaseList checks a lease list against the grants acknowledged
// before the call was sent.
func (c *checkers) checkLeaseList(call maintCall, r *pb.LeaseLeasesResponse) {
	listed := map[int64]bool{}
	for _, l := range r.Leases {
		listed[l.ID] = true
	}
	applied := c.maint.granted[memberInc{call.m.idx, call.inc}]
	for _, rec := range c.leases[:call.leases] {
		at, ok := applied[rec.id]
		if ok && at <= call.applied && !listed[rec.id] {
			c.fail("operator: %s did not list lease %x, whose grant it applied at index %d, before the call (at index %d)", call.m.name, rec.id, at, call.applied)
		}
	}
}

// disarmSent records a deactivation sent now.
func (c *checkers) disarmSent() *disarmSent {
	d := &disarmSent{sent: c.w.now}
	c.maint.disarms = append(c.maint.disarms, d)
	return d
}

// checkNoSpaceWrites: a write with a cost that succeeded at a revision
// above an alarm list's that showed NOSPACE was applied after it; the
// alarm must have been disarmed in between, so some deactivation was
// sent before the write returned and not known to be applied before the
// list was sent.
func (c *checkers) checkNoSpaceWrites() {
	for _, a := range c.maint.noSpace {
		for _, op := range c.history {
			if op.Unknown || op.Failed || op.Err != "" || op.Rev <= a.rev || !costs(op.Req) {
				continue
			}
			if !c.disarmedBetween(a.sent, op.Return) {
				c.fail("operator: %s succeeded at revision %d, after an alarm list showed NOSPACE at revision %d, with no disarm sent in between", op, op.Rev, a.rev)
				return
			}
		}
	}
}

func (c *checkers) disarmedBetween(listSent, writeReturned int64) bool {
	for _, d := range c.maint.disarms {
		if d.sent < writeReturned && (d.answeredAt == 0 || d.answeredAt > listSent) {
			return true
		}
	}
	return false
}

// costs reports whether a request counts against the space quota: a put,
// or a transaction with a put in it.
func costs(r core.Request) bool {
	return r.Put != nil || r.Txn != nil && txnPuts(r.Txn)
}

func txnPuts(t *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			if op.GetRequestPut() != nil || op.GetRequestTxn() != nil && txnPuts(op.GetRequestTxn()) {
				return true
			}
		}
	}
	return false
}
