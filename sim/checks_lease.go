package sim

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
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
func (c *checkers) noteApplied(m *member, data []byte) {
	if len(data) == 0 || c.revokedAt == nil {
		return
	}
	var r pb.InternalRaftRequest
	if proto.Unmarshal(data, &r) != nil {
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
	for _, rec := range c.leases {
		at, revoked := c.revokedAt[rec.id]
		if revoked && !rec.revoked {
			earliest := rec.lastRenewSent + rec.ttl*1_000_000*1_000_000/(1_000_000+driftMaxPPM)
			if at < earliest {
				c.fail("lease %x (ttl %ds) expired at %dus, but a keep-alive sent at %dus renewed it", rec.id, rec.ttl, at, rec.lastRenewSent)
			}
		}
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

// noteGrant records when a lease's grant was applied, each time.
func (c *checkers) noteGrant(data []byte) {
	var r pb.InternalRaftRequest
	if proto.Unmarshal(data, &r) == nil && r.LeaseGrant != nil {
		c.grantedAt[r.LeaseGrant.ID] = c.w.now
	}
}
