package sim

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// driftMax bounds a member's clock drift (see faults.go): lease expiry
// runs on the leader's ticks, so a lease may end this much early in
// virtual time.
const driftMaxPPM = 20_000

// noteApplied records when each lease revoke and compaction was first
// applied by m. Each counts only if it took effect there: one proposed
// without a user before auth was enabled is refused when it is applied
// after. A
// client's revoke (its header names a user) may be refused at apply time
// (its auth revision is old): only its client's answer says it happened
// (leaseRecord.revokeAcked); revokes without a user, the leader's
// expiries and revokes with auth off, always take effect. It notes the
// compactions that took effect too: not one refused at apply for its
// credentials (as after an auth change while it was on its way), which
// the member's compaction revision shows.
func (c *checkers) noteApplied(m *member, r *pb.InternalRaftRequest) {
	if r == nil || c.revokedAt == nil {
		return
	}
	if r.Compaction != nil && (m.node == nil || m.node.CompactRev() >= r.Compaction.Revision) {
		c.noteCompaction(r.Compaction)
	}
	if r.Alarm != nil {
		c.noteAlarm(r.Alarm)
	}
	if r.LeaseRevoke == nil || r.GetHeader().GetUsername() != "" || m.node != nil && m.node.HasLease(r.LeaseRevoke.ID) {
		return
	}
	if _, seen := c.revokedAt[r.LeaseRevoke.ID]; !seen {
		c.revokedAt[r.LeaseRevoke.ID] = c.w.now
	}
}

// checkLeases verifies etcd's lease guarantees for the simulated lease
// clients: a lease kept alive is never revoked by expiry less than a TTL
// (less the clock drift bound) after a keep-alive that renewed it was
// sent; a lease's keys all go in one revision; no live key is left on a
// lease that is gone.
func (c *checkers) checkLeases() {
	deletedAt := map[string]int64{}
	for _, ev := range c.hist.events {
		if ev.Type == mvccpb.Event_DELETE {
			deletedAt[string(ev.Kv.Key)] = ev.Kv.ModRevision
		}
	}
	// The leases of past epochs were judged when theirs ended.
	for _, rec := range c.leases[c.leasesJudged:] {
		c.checkLeaseExpiry(rec)
		_, revoked := c.revokedAt[rec.id]
		if !revoked && !rec.revokeAcked {
			continue
		}
		var rev int64
		for _, k := range rec.keys {
			r, ok := deletedAt[k]
			switch {
			case !ok && c.hist.base[k] == nil && c.hist.baseRev > 0 && !c.holds(k):
				continue // deleted before the compaction the history starts at
			case !ok:
				c.fail("lease %x revoked, but its key %s is still there", rec.id, k)
			case rev != 0 && r != rev:
				c.fail("lease %x: its keys went in different revisions (%d and %d)", rec.id, rev, r)
			}
			rev = r
		}
	}
}

// checkLeaseExpiry: a lease kept alive is never revoked by expiry less
// than a TTL (less the clock drift bound) after a keep-alive that
// renewed it was sent.
func (c *checkers) checkLeaseExpiry(rec *leaseRecord) {
	at, revoked := c.revokedAt[rec.id]
	if revoked && !rec.revoked {
		earliest := rec.lastRenewSent + rec.ttl*1_000_000*1_000_000/(1_000_000+driftMaxPPM)
		if at < earliest {
			c.fail("lease %x (ttl %ds) expired at %dus, but a keep-alive sent at %dus renewed it", rec.id, rec.ttl, at, rec.lastRenewSent)
		}
	}
}

func (r *leaseRecord) String() string { return fmt.Sprintf("lease %x of l%d", r.id, r.client) }

// holds reports whether the history's newest event for key is a put.
func (c *checkers) holds(key string) bool {
	held := c.hist.base[key] != nil
	for _, ev := range c.hist.events {
		if string(ev.Kv.Key) == key {
			held = ev.Type == mvccpb.Event_PUT
		}
	}
	return held
}

// ticksStalled reports whether some member's ticks stopped between from
// and to.
func (c *checkers) ticksStalled(from, to int64) bool {
	for _, s := range c.tickStalls {
		if s[0] < to && s[1] > from {
			return true
		}
	}
	return false
}

// leaseLog is what the lease checker learns from the log, as every
// member applies it: for each lease, the remaining TTLs checkpointed in
// log order, and for each term, when its leader promoted its lessor.
type leaseLog struct {
	// ckpts are each lease's checkpoints, by index: a grant, or a
	// renewal's cleared checkpoint, restarts the lease at its full TTL
	// (remaining 0).
	ckpts map[int64][]leaseCkpt
	// lastIndex is the newest index noted in ckpts: an entry counts once.
	lastIndex uint64
	// promoted is, by term, when its leader applied the term's first
	// entry (raft's empty one): etcd's leader promotes its lessor then,
	// once it has applied every entry of the terms before.
	promoted map[uint64]leasePromotion
	// grantedByLeader is, by lease, when a leader last applied its grant
	// (which starts its clock there), and in which term.
	grantedByLeader map[int64]leasePromotion
}

type leaseCkpt struct {
	index     uint64
	remaining int64 // seconds; 0: the full TTL
}

// leasePromotion is a leader's start of a lease's clock: at, in term,
// from the state after the entry at index.
type leasePromotion struct {
	term  uint64
	index uint64
	at    int64
}

// noteLeaseEntry follows, for the lease checks, m's apply of the entry
// at index: checkpoints and grants (in log order, once), a leader's
// first entry of its term and its grants.
func (c *checkers) noteLeaseEntry(m *member, index, term uint64, empty bool, r *pb.InternalRaftRequest) {
	l := &c.leaseLog
	if l.ckpts == nil {
		l.ckpts, l.promoted, l.grantedByLeader = map[int64][]leaseCkpt{}, map[uint64]leasePromotion{}, map[int64]leasePromotion{}
	}
	leading := m.node != nil && m.node.Leader() == m.id && m.node.Term() == term
	if empty {
		if _, seen := l.promoted[term]; leading && !seen {
			l.promoted[term] = leasePromotion{term: term, index: index, at: c.w.now}
		}
		return
	}
	if r == nil {
		return
	}
	if r.LeaseGrant != nil && leading {
		l.grantedByLeader[r.LeaseGrant.ID] = leasePromotion{term: term, index: index, at: c.w.now}
	}
	if index <= l.lastIndex {
		return
	}
	l.lastIndex = index
	switch {
	case r.LeaseGrant != nil:
		// A grant refused at apply (a duplicate id, NOSPACE) changes
		// nothing; taking it as a restart at the full TTL only loosens
		// the bound.
		l.ckpts[r.LeaseGrant.ID] = append(l.ckpts[r.LeaseGrant.ID], leaseCkpt{index: index})
	case r.LeaseCheckpoint != nil:
		for _, cp := range r.LeaseCheckpoint.Checkpoints {
			l.ckpts[cp.ID] = append(l.ckpts[cp.ID], leaseCkpt{index: index, remaining: cp.Remaining_TTL})
		}
	}
}

// remainingAt is a lease's remaining TTL in seconds once the entries up
// to index are applied, by etcd's rule: the last checkpoint's, or the
// full TTL if a grant or a renewal came after it; granted reports
// whether its grant is at or below index.
func (l *leaseLog) remainingAt(id int64, index uint64, ttl int64) (remaining int64, granted bool) {
	remaining = ttl
	for _, cp := range l.ckpts[id] {
		if cp.index > index {
			break
		}
		granted = true
		remaining = ttl
		if cp.remaining > 0 {
			remaining = cp.remaining
		}
	}
	return remaining, granted
}

// checkTimeToLive judges a TimeToLive answer for rec's lease, asked at
// sent, by etcd's rules with checkpoints: the leader of the answer's
// term set the lease's expiry last at one of these, and reports what is
// left of it, in whole seconds rounded down, never above the granted TTL:
//   - its promotion, when it applied its term's first entry: the lease's
//     remaining TTL after the entries before it (the last checkpoint's,
//     or the full TTL if a grant or a renewal came after it), plus an
//     election timeout;
//   - a grant it applied after that: the full TTL;
//   - a renewal in its term: the full TTL, from the last keep-alive the
//     holder had answered in that term at the latest.
//
// Lease time runs on the leader's ticks: the check allows its clock's
// drift, a tick of rounding either way, and is left out across a stretch
// in which some member's ticks stopped, or while a keep-alive is in
// flight; one left unanswered may renew the lease for a while after it
// was sent (leaseLostHorizonTicks).
func (c *checkers) checkTimeToLive(rec *leaseRecord, sent int64, t *pb.LeaseTimeToLiveResponse) {
	c.checkTTLFloor(rec, sent, t)
	if t.TTL == -1 {
		return
	}
	if t.TTL > rec.ttl || t.GrantedTTL != rec.ttl {
		c.fail("lease %x: time to live %d (granted %d), granted at %d", rec.id, t.TTL, t.GrantedTTL, rec.ttl)
		return
	}
	// What the client learned before a restore says nothing of the
	// restored cluster's terms and clocks (checks_epoch.go).
	start := c.epochStart()
	renewTerm, lostSent := rec.renewTerm, rec.lostSent
	if rec.renewedBy < start {
		renewTerm = 0
	}
	if lostSent < start {
		lostSent = 0
	}
	term := t.Header.GetRaftTerm()
	p, ok := c.leaseLog.promoted[term]
	if !ok || sent < start || rec.renewing > 0 || renewTerm > term {
		return
	}
	s := c.w.settings
	tps := 1_000_000 / s.TickUs
	var starts []leaseStart
	if rem, granted := c.leaseLog.remainingAt(rec.id, p.index, rec.ttl); granted {
		starts = append(starts, leaseStart{from: p.at, at: p.at, ticks: 1 + int64(s.ElectionTicks) + rem*tps,
			why: fmt.Sprintf("promoted at %dus after index %d with %ds left", p.at, p.index, rem)})
	}
	if g, ok := c.leaseLog.grantedByLeader[rec.id]; ok && g.term == term {
		starts = append(starts, leaseStart{from: g.at, at: g.at, ticks: 1 + rec.ttl*tps, why: fmt.Sprintf("granted at %dus", g.at)})
	}
	if renewTerm == term {
		starts = append(starts, leaseStart{from: rec.renewedBy, at: rec.renewedBy, ticks: 1 + rec.ttl*tps, why: fmt.Sprintf("renewed by %dus", rec.renewedBy)})
	}
	if lostSent > 0 {
		// A keep-alive left unanswered may still be on its way: it waits
		// for a read index, then for its cleared checkpoint, each at most
		// a request timeout of the leader's ticks.
		at := lostSent + leaseLostHorizonTicks*s.TickUs
		starts = append(starts, leaseStart{from: lostSent, at: at, ticks: 1 + rec.ttl*tps, why: fmt.Sprintf("renewed by %dus by a keep-alive sent at %dus and not answered", at, lostSent)})
	}
	if len(starts) == 0 {
		return // none seen: the leader's start is not known
	}
	most, why := int64(0), ""
	for _, st := range starts {
		at := max(sent, st.at)
		if c.ticksStalled(st.from, at) {
			return
		}
		elapsed := max((at-st.at)*(1_000_000-driftMaxPPM)/1_000_000/s.TickUs-1, 0)
		if left := max(st.ticks-elapsed, 0) / tps; left >= most {
			most, why = left, st.why
		}
	}
	c.w.trace.logf(c.w.now, "lease %x: time to live %ds in term %d, at most %ds (%s)", rec.id, t.TTL, term, most, why)
	if t.TTL > most {
		c.fail("lease %x (ttl %ds): %ds left at %dus in term %d, but at most %ds: its leader's latest start of its clock was at most %s",
			rec.id, rec.ttl, t.TTL, sent, term, most, why)
	}
}

// checkTTLFloor judges a TimeToLive answer from below, by etcd's rule
// that a lease lives a TTL from each renewal: the leader renewed it at
// or after the last keep-alive that came back renewed was sent, and a
// leader of that term or a later one (which applied the renewal's
// cleared checkpoint, so restarts it at its full TTL when promoted)
// reports at least what is left of a TTL from then, less its clock's
// drift, a tick of rounding and a second of rounding down, if asked once
// that renewal was answered; nor is the lease gone before then, unless
// its holder revoked it. A leader of an
// older term, deposed unaware, may answer from before the renewal; a
// restore loses renewals (checks_epoch.go).
func (c *checkers) checkTTLFloor(rec *leaseRecord, sent int64, t *pb.LeaseTimeToLiveResponse) {
	if rec.revoked || rec.renewTerm == 0 || rec.renewedBy > sent || t.Header.GetRaftTerm() < rec.renewTerm || rec.renewedBy < c.epochStart() {
		return
	}
	s := c.w.settings
	tps := 1_000_000 / s.TickUs
	elapsed := (c.w.now-rec.lastRenewSent)*(1_000_000+driftMaxPPM)/1_000_000/s.TickUs + 1
	least := (rec.ttl*tps-elapsed)/tps - 1
	if least <= 0 || t.TTL >= least {
		return
	}
	if t.TTL == -1 {
		c.fail("lease %x (ttl %ds) gone at %dus in term %d, but a keep-alive sent at %dus renewed it (in term %d): at least %ds were left",
			rec.id, rec.ttl, c.w.now, t.Header.GetRaftTerm(), rec.lastRenewSent, rec.renewTerm, least)
		return
	}
	c.fail("lease %x (ttl %ds): %ds left at %dus in term %d, but a keep-alive sent at %dus renewed it (in term %d): at least %ds were left",
		rec.id, rec.ttl, t.TTL, c.w.now, t.Header.GetRaftTerm(), rec.lastRenewSent, rec.renewTerm, least)
}

// leaseStart is a moment a leader may have set a lease's expiry: ticks
// from at, at the latest; from is when what set it began (stopped ticks
// since then may have delayed it).
type leaseStart struct {
	from, at, ticks int64
	why             string
}

// leaseLostHorizonTicks bounds, in ticks, how long after it was sent an
// unanswered keep-alive may still renew a lease: two request timeouts (a
// read index, a cleared checkpoint) and one more for the way there (a
// paused member holding it, the network).
const leaseLostHorizonTicks = 3 * requestTimeoutTicks
