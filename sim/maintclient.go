package sim

import (
	"fmt"
	"math/rand/v2"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
)

// operator plays a cluster's operator at the Maintenance service, as
// root (etcd lets only an administrator defragment, hash, move the
// leader or change alarms): it asks members for their status, alarms,
// hashes and leases, defragments them and moves the leader while the
// workload runs; and when an alarm list shows NOSPACE it does what
// etcd's documentation tells an operator to: compact, defragment every
// member, disarm the alarms, and check that a write succeeds again.
// Every answer goes to the maintenance checks (checks_maint.go).
type operator struct {
	w   *World
	id  int
	rng *rand.Rand
	// weights are this operator's odds of each call.
	weights [maintKindsEnd]int
	// login is the operator's session as root; app, as the app user,
	// which now and then makes a call by mistake.
	login, app *login
	// leader is the leader the last status answer named, where a
	// leadership move is sent.
	leader uint64
	// recovering is set while a NOSPACE recovery runs; final, in the
	// liveness phase, is the last one, which must end with a write.
	recovering bool
	final      *finalRecovery
}

// maintKind is an operator call.
type maintKind int

const (
	maintStatus maintKind = iota
	maintAlarms
	maintDefragment
	maintHash
	maintHashKV
	maintMoveLeader
	maintLeases
	maintSnapshot
	maintKindsEnd
)

var maintNames = [maintKindsEnd]string{"status", "alarm-list", "defragment", "hash", "hash-kv", "move-leader", "lease-leases", "snapshot"}

// maintWeightsBase are the mean odds of each call.
var maintWeightsBase = [maintKindsEnd]int{maintStatus: 4, maintAlarms: 4, maintDefragment: 2, maintHash: 1, maintHashKV: 4, maintMoveLeader: 1, maintLeases: 2, maintSnapshot: 1}

// operatorThinkMinUs and operatorThinkMaxUs bound the pause between an
// operator's calls.
const (
	operatorThinkMinUs = 100_000
	operatorThinkMaxUs = 1_500_000
)

// appCallOdds: one call in appCallOdds, with auth on, goes as the app
// user, whom etcd lets only list alarms, leases and ask for the status.
const appCallOdds = 8

// maintKey is the key the recovery writes to show that writes succeed
// again: outside the workload's keys ("g.."), so the checkers' view of
// the history stays the workload's.
const maintKey = "maint/recovered"

func newOperator(w *World, id int) *operator {
	o := &operator{w: w, id: id, rng: w.child(), login: newLogin(rootUser), app: newLogin(appUser)}
	for k, b := range maintWeightsBase {
		o.weights[k] = o.rng.IntN(2*b + 1)
	}
	o.weights[maintStatus]++ // never all zero
	return o
}

func (o *operator) start() { o.w.after(o.think(), o.issue) }

func (o *operator) think() int64 {
	return operatorThinkMinUs + o.rng.Int64N(operatorThinkMaxUs-operatorThinkMinUs+1)
}

// issue makes the operator's next call, then the one after.
func (o *operator) issue() {
	w := o.w
	if w.stopping {
		return
	}
	o.send(o.pickKind())
	w.after(o.think(), o.issue)
}

func (o *operator) pickKind() maintKind {
	total := 0
	for _, n := range o.weights {
		total += n
	}
	r := o.rng.IntN(total)
	for k, n := range o.weights {
		if r < n {
			return maintKind(k)
		}
		r -= n
	}
	return maintStatus
}

// pick chooses a member to call: any that is not removed.
func (o *operator) pick() *member {
	live := o.w.live()
	return live[o.rng.IntN(len(live))]
}

// send makes one call of kind k and hands its answer to the checks.
func (o *operator) send(k maintKind) {
	w := o.w
	m := o.pick()
	var c rpc
	var target uint64
	var stream *snapshotStream
	switch k {
	case maintStatus:
		c = maintRPC("Status", &pb.StatusRequest{})
	case maintAlarms:
		c = alarmRPC(&pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	case maintDefragment:
		c = maintRPC("Defragment", &pb.DefragmentRequest{})
	case maintHash:
		c = maintRPC("Hash", &pb.HashRequest{})
	case maintHashKV:
		c = maintRPC("HashKV", &pb.HashKVRequest{Revision: o.hashRevision()})
	case maintMoveLeader:
		if o.leader != 0 && int(o.leader) <= len(w.members) && o.rng.IntN(4) > 0 {
			m = w.members[o.leader-1]
		}
		target = o.voter()
		c = maintRPC("MoveLeader", &pb.MoveLeaderRequest{TargetID: target})
	case maintLeases:
		c = leasesRPC()
	default:
		stream = &snapshotStream{}
	}
	o.run(m, k, c, target, stream)
}

// run makes one call, prepared by send, and hands its answer to the
// checks.
func (o *operator) run(m *member, k maintKind, c rpc, target uint64, stream *snapshotStream) {
	w := o.w
	run := m.unaryCall(c)
	if stream != nil {
		run = m.snapshotCall(stream)
	}
	call := o.newCall(m, k)
	call.target, call.snapshot = target, stream
	l := o.login
	if w.authOn && o.rng.IntN(appCallOdds) == 0 {
		l, call.asApp = o.app, true
	}
	w.runWithin(m, l, run, 2*w.settings.ClientTimeoutUs, func(resp *core.Response) {
		if resp == nil {
			return
		}
		w.trace.logf(w.now, "o%d %s on %s as %s: %s", o.id, maintNames[k], m.name, l.user, outcome(resp))
		w.checks.maintAnswer(call, resp)
		if stream != nil && resp.Err == nil {
			w.keepBackup(stream)
		}
		if k == maintDefragment && resp.Err == nil {
			o.hashAfterDefrag(m)
		}
		o.react(resp)
	})
}

// hashAfterDefrag is what an operator runs after a defragmentation
// (etcdctl endpoint hashkv --cluster): HashKV on every member at the
// defragmented member's revision, which the HashKV check compares.
func (o *operator) hashAfterDefrag(m *member) {
	if !m.up || m.node == nil {
		return
	}
	rev := int64(m.node.Rev())
	for _, mm := range o.w.live() {
		o.run(mm, maintHashKV, maintRPC("HashKV", &pb.HashKVRequest{Revision: rev}), 0, nil)
	}
}

// react learns the leader from a status, and starts a recovery when an
// alarm list shows NOSPACE.
func (o *operator) react(resp *core.Response) {
	w := o.w
	switch r := resp.Msg.(type) {
	case *pb.StatusResponse:
		o.leader = r.Leader
	case *pb.AlarmResponse:
		if o.recovering || len(noSpaceAlarms(r)) == 0 {
			return
		}
		o.recoverSpace(r, func(ok bool, why string) {
			w.trace.logf(w.now, "o%d: NOSPACE recovery: writes succeed %v %s", o.id, ok, why)
		})
	}
}

// newCall describes a call of kind k to m sent now, for the checks.
func (o *operator) newCall(m *member, k maintKind) maintCall {
	call := maintCall{m: m, inc: m.inc, kind: k, sent: o.w.now, leases: len(o.w.checks.leases)}
	if m.up && m.node != nil {
		call.applied, call.term = m.node.AppliedIndex(), m.node.Term()
	}
	return call
}

// hashRevision is the revision a HashKV asks for: the current one (0),
// the newest compaction's, or a recent round one, so that members (and
// one member over time) often hash the same revision.
func (o *operator) hashRevision() int64 {
	const roundRevs = 32
	switch o.rng.IntN(3) {
	case 0:
		return 0
	case 1:
		if c := o.w.checks.compactRev(); c > 0 {
			return c
		}
	}
	return max(o.w.checks.maxRev/roundRevs*roundRevs, 1)
}

// voter is a random voter's id, as the world knows them: a leadership
// move's target.
func (o *operator) voter() uint64 {
	var ids []uint64
	for _, m := range o.w.live() {
		if !m.learner {
			ids = append(ids, m.id)
		}
	}
	if len(ids) == 0 {
		return 1
	}
	return ids[o.rng.IntN(len(ids))]
}

// call sends c to m as root and gives the answer (nil: none within
// twice the client timeout, as a defragmentation takes long).
func (o *operator) call(m *member, c rpc, cb func(*core.Response)) {
	o.w.invokeWithin(m, o.login, c, 2*o.w.settings.ClientTimeoutUs, cb)
}

// invokeWithin sends c to m as l's user, one network latency each way,
// and gives the answer, or nil if none came within timeoutUs.
func (w *World) invokeWithin(m *member, l *login, c rpc, timeoutUs int64, cb func(*core.Response)) {
	w.runWithin(m, l, m.unaryCall(c), timeoutUs, cb)
}

// runWithin is invokeWithin for any call of m's services.
func (w *World) runWithin(m *member, l *login, run serviceCall, timeoutUs int64, cb func(*core.Response)) {
	done := false
	finish := func(resp *core.Response) {
		if !done {
			done = true
			cb(resp)
		}
	}
	w.after(w.settings.Net.LatencyMinUs, m.event(func() {
		w.runAs(m, l, run, func(resp core.Response) {
			w.after(w.settings.Net.LatencyMinUs, func() { finish(&resp) })
		})
	}))
	w.after(timeoutUs, func() { finish(nil) })
}

// maintRPC is a call of the Maintenance service's method name.
func maintRPC(name string, req proto.Message) rpc {
	return func() (string, proto.Message) { return "/etcdserverpb.Maintenance/" + name, req }
}

func alarmRPC(r *pb.AlarmRequest) rpc { return maintRPC("Alarm", r) }

// leasesRPC lists the leases (Lease.LeaseLeases, etcdctl lease list).
func leasesRPC() rpc { return requestRPC(core.Request{LeaseLeases: true}) }

// finalRecovery is the liveness phase's last recovery: it is done once a
// write succeeded with no NOSPACE alarm left.
type finalRecovery struct {
	done    bool
	rounds  int
	lastErr string
}

// finalRound lists the alarms, recovers if one is NOSPACE, and writes;
// it starts over until the write succeeds.
func (o *operator) finalRound() {
	f, w := o.final, o.w
	if f.done {
		return
	}
	if o.recovering {
		w.after(finalRetryUs, o.finalRound)
		return
	}
	f.rounds++
	o.listAlarms(func(a *pb.AlarmResponse, why string) {
		if a == nil {
			f.lastErr = why
			w.after(finalRetryUs, o.finalRound)
			return
		}
		if corruptAlarm(a) {
			// The cluster refuses writes until an operator restores the
			// diverged member: no recovery of space can end that.
			f.done = true
			return
		}
		o.recoverSpace(a, func(ok bool, why string) {
			f.done, f.lastErr = ok, why
			if !ok {
				w.after(finalRetryUs, o.finalRound)
			}
		})
	})
}

// finalRetryUs is the pause before another round of the last recovery.
const finalRetryUs = 200_000

// startFinalRecovery starts the first operator's last recovery; with no
// operators it returns nil, which is done at once.
func (w *World) startFinalRecovery() *finalRecovery {
	if len(w.operators) == 0 {
		return nil
	}
	o := w.operators[0]
	o.final = &finalRecovery{}
	o.finalRound()
	return o.final
}

func (f *finalRecovery) isDone() bool { return f == nil || f.done }

func (f *finalRecovery) report() string {
	if f.isDone() {
		return ""
	}
	return fmt.Sprintf("; the operator saw no write succeed with NOSPACE cleared (%d rounds; last: %s)", f.rounds, f.lastErr)
}

// serving picks a serving member that is up, or nil.
func (o *operator) serving() *member {
	var up []*member
	for _, m := range o.w.serving() {
		if m.up {
			up = append(up, m)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[o.rng.IntN(len(up))]
}

// callServing sends c to a serving member and gives the answer, or why
// there is none.
func (o *operator) callServing(k maintKind, c rpc, cb func(m *member, resp *core.Response, why string)) {
	w := o.w
	m := o.serving()
	if m == nil {
		cb(nil, nil, "no serving member is up")
		return
	}
	call := o.newCall(m, k)
	o.call(m, c, func(resp *core.Response) {
		if resp != nil && k < maintKindsEnd {
			w.checks.maintAnswer(call, resp)
		}
		switch {
		case resp == nil:
			cb(m, nil, m.name+": no answer")
		case resp.Err != nil:
			cb(m, resp, m.name+": "+resp.Err.Error())
		default:
			cb(m, resp, "")
		}
	})
}

// listAlarms gets the alarm list from a serving member.
func (o *operator) listAlarms(cb func(a *pb.AlarmResponse, why string)) {
	o.callServing(maintAlarms, alarmRPC(&pb.AlarmRequest{Action: pb.AlarmRequest_GET}), func(_ *member, resp *core.Response, why string) {
		if why != "" {
			cb(nil, why)
			return
		}
		cb(resp.Msg.(*pb.AlarmResponse), "")
	})
}

// corruptAlarm reports a CORRUPT alarm in a list.
func corruptAlarm(a *pb.AlarmResponse) bool {
	for _, am := range a.Alarms {
		if am.Alarm == pb.AlarmType_CORRUPT {
			return true
		}
	}
	return false
}

// noSpaceAlarms are the NOSPACE alarms in a list.
func noSpaceAlarms(a *pb.AlarmResponse) []*pb.AlarmMember {
	var out []*pb.AlarmMember
	for _, am := range a.Alarms {
		if am.Alarm == pb.AlarmType_NOSPACE {
			out = append(out, am)
		}
	}
	return out
}

// recoverSpace does what etcd's documentation tells an operator to do
// when an alarm list shows NOSPACE: compact at the list's revision,
// defragment every member, disarm, and then check that a write
// succeeds. done gets whether it did, or why not.
func (o *operator) recoverSpace(a *pb.AlarmResponse, done func(ok bool, why string)) {
	o.recovering = true
	finish := func(ok bool, why string) {
		o.recovering = false
		done(ok, why)
	}
	alarms := noSpaceAlarms(a)
	if len(alarms) == 0 {
		o.writeBack(finish)
		return
	}
	w := o.w
	w.trace.logf(w.now, "o%d: NOSPACE raised for %d members: compact, defragment, disarm", o.id, len(alarms))
	w.checks.scanHistory() // before the compaction takes what the checks need
	compact := core.Request{Compaction: &pb.CompactionRequest{Revision: a.Header.GetRevision(), Physical: true}}
	o.callServing(maintKindsEnd, requestRPC(compact), func(*member, *core.Response, string) {
		o.defragmentAll(o.w.serving(), func() {
			o.disarm(alarms, func() { o.writeBack(finish) })
		})
	})
}

// defragmentAll defragments the members one at a time, as etcd's
// documentation advises; a member that is down is skipped.
func (o *operator) defragmentAll(ms []*member, done func()) {
	if len(ms) == 0 {
		done()
		return
	}
	w, m := o.w, ms[0]
	if !m.up {
		o.defragmentAll(ms[1:], done)
		return
	}
	call := o.newCall(m, maintDefragment)
	o.call(m, maintRPC("Defragment", &pb.DefragmentRequest{}), func(resp *core.Response) {
		if resp != nil {
			w.trace.logf(w.now, "o%d defragment %s: %s", o.id, m.name, outcome(resp))
			w.checks.maintAnswer(call, resp)
		}
		o.defragmentAll(ms[1:], done)
	})
}

// disarm deactivates each alarm, one at a time, as etcdctl alarm disarm
// does.
func (o *operator) disarm(alarms []*pb.AlarmMember, done func()) {
	if len(alarms) == 0 {
		done()
		return
	}
	w := o.w
	a := alarms[0]
	d := w.checks.disarmSent()
	req := &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: a.MemberID, Alarm: a.Alarm}
	o.callServing(maintKindsEnd, alarmRPC(req), func(m *member, resp *core.Response, why string) {
		if why == "" {
			d.answeredAt = w.now
		}
		w.trace.logf(w.now, "o%d disarm NOSPACE of m%d: %s", o.id, a.MemberID, outcome(resp))
		o.disarm(alarms[1:], done)
	})
}

// writeBack writes the operator's key: writes must succeed once the
// alarms are disarmed.
func (o *operator) writeBack(done func(ok bool, why string)) {
	w := o.w
	put := core.Request{Put: &pb.PutRequest{Key: []byte(maintKey), Value: []byte(fmt.Sprintf("o%d-%d", o.id, w.now))}}
	o.callServing(maintKindsEnd, requestRPC(put), func(m *member, _ *core.Response, why string) {
		if why == "" {
			w.trace.logf(w.now, "o%d: a write on %s succeeds", o.id, m.name)
		}
		done(why == "", why)
	})
}
