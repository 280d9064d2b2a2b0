package sim

import (
	"fmt"
	"slices"
	"strings"
)

// The quorum check: a snapshot in flight never costs the cluster its
// quorum (issue 18). A leader that steps down while a snapshot transfer is
// in flight, by CheckQuorum (hearing from no quorum for an election
// timeout) or for a newer term, must have a fault to explain it: a fault
// on the leader, or faults on enough voters that the voters left
// untouched are no quorum, in the last few election timeouts. A voter is touched while it is down, paused,
// kept faulty or broken, and for a while after any fault on it (a crash, a
// pause, a slow disk, a failed fsync, a clock jump); every member is
// touched by network faults, power losses and membership changes. A
// leader seen handing its leadership over (MoveLeader) explains a newer
// term.

// quorumWindowElections is how many election timeouts back a fault
// explains a step-down: CheckQuorum looks back one to two election
// timeouts, and one more covers messages in flight and latency tails.
const quorumWindowElections = 3

// snapshotFlight is a snapshot transfer, from when the leader starts
// sending it until the leader learns how it went.
type snapshotFlight struct {
	from, to string
	startUs  int64
}

// quorumCheck is the check's record of the run.
type quorumCheck struct {
	flights []*snapshotFlight
	// members is what the check knows of each member, by index.
	members []quorumMember
	// allTouchedUntil is until when a fault touches every member.
	allTouchedUntil int64
}

// quorumMember is what the quorum check knows of one member.
type quorumMember struct {
	// inc is the incarnation last seen: a new one is a restart.
	inc int
	// touchedUntil is until when a fault touches the member.
	touchedUntil int64
	// leading says the member was last seen leading term; transferUs is
	// when it was last seen handing leadership over in that term.
	leading    bool
	term       uint64
	transferUs int64
}

// snapshotSent records a transfer that starts now.
func (c *checkers) snapshotSent(from, to *member) *snapshotFlight {
	f := &snapshotFlight{from: from.name, to: to.name, startUs: c.w.now}
	c.quorum.flights = append(c.quorum.flights, f)
	return f
}

// snapshotEnded records that a transfer ended (f nil: it never started).
func (c *checkers) snapshotEnded(f *snapshotFlight) {
	if i := slices.Index(c.quorum.flights, f); i >= 0 && f != nil {
		c.quorum.flights = slices.Delete(c.quorum.flights, i, i+1)
	}
}

// faultInjected records which members a fault of kind k, injected now on
// m and healing after heal microseconds where it heals, touches.
func (c *checkers) faultInjected(k Faults, m *member, heal int64) {
	until := c.w.now + heal
	switch k {
	case FaultPartition, FaultOneWay, FaultNetwork, FaultPowerLoss, FaultMembership:
		c.quorum.allTouchedUntil = max(c.quorum.allTouchedUntil, until)
		return
	case FaultClock:
		// A jump back stalls the member's ticks for as long as it jumped.
		until = c.w.now + clockJumpMaxUs
	}
	c.quorum.member(m.idx).touch(until)
}

func (q *quorumCheck) member(idx int) *quorumMember {
	for len(q.members) <= idx {
		q.members = append(q.members, quorumMember{})
	}
	return &q.members[idx]
}

func (qm *quorumMember) touch(until int64) { qm.touchedUntil = max(qm.touchedUntil, until) }

// observeQuorum follows m's leadership after an event of its, and judges a
// step-down while a snapshot is in flight.
func (c *checkers) observeQuorum(m *member) {
	q, now := &c.quorum, c.w.now
	if c.w.faults.changing {
		q.allTouchedUntil = max(q.allTouchedUntil, now)
	}
	qm := q.member(m.idx)
	if qm.inc != m.inc {
		// A restart: the member was down until now.
		qm.inc, qm.leading = m.inc, false
		qm.touch(now)
	}
	term := m.node.Term()
	if m.node.Leader() == m.id {
		if !qm.leading || qm.term != term {
			qm.leading, qm.term, qm.transferUs = true, term, -1
		}
		if len(q.flights) > 0 && m.node.LeadTransferee() != 0 {
			qm.transferUs = now
		}
		return
	}
	if !qm.leading {
		return
	}
	qm.leading = false
	if len(q.flights) > 0 {
		c.judgeStepDown(m, *qm, term)
	}
}

// judgeStepDown fails the run if m, which led term l.term and now is in
// term term without leading, stepped down untouched by any fault, with a
// quorum of the voters (itself included) untouched too, for the last
// quorumWindowElections election timeouts.
func (c *checkers) judgeStepDown(m *member, l quorumMember, term uint64) {
	s := c.w.settings
	windowUs := quorumWindowElections * int64(s.ElectionTicks) * s.TickUs
	since := c.w.now - windowUs
	if c.touched(m.id, since) {
		return // the others may have elected a new leader without it
	}
	how := "by CheckQuorum"
	if term != l.term {
		if l.transferUs >= since {
			return
		}
		how = fmt.Sprintf("for term %d", term)
	}
	voters := 0
	var untouched []string
	for _, v := range m.node.Members() {
		if v.IsLearner {
			continue
		}
		voters++
		if !c.touched(v.ID, since) {
			untouched = append(untouched, fmt.Sprintf("m%d", v.ID))
		}
	}
	if len(untouched) <= voters/2 {
		return
	}
	f := c.quorum.flights[0]
	c.fail("quorum lost during a snapshot transfer: %s stopped leading term %d %s while snapshot %s>%s was in flight for %dus; no fault touched voters %s, a quorum of the %d, in the last %dus",
		m.name, l.term, how, f.from, f.to, c.w.now-f.startUs, strings.Join(untouched, " "), voters, windowUs)
}

// touched says whether a fault explains member id's silence since since.
func (c *checkers) touched(id uint64, since int64) bool {
	if id == 0 || int(id) > len(c.w.members) || c.quorum.allTouchedUntil >= since {
		return true
	}
	m := c.w.members[id-1]
	if !m.up || m.paused || m.kept || m.refused || m.removed || m.broken != 0 || m.slow > 1 || m.failSync || m.garbageArmed > 0 {
		return true
	}
	return c.quorum.member(m.idx).touchedUntil >= since
}
