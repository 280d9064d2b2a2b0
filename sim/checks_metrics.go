package sim

import (
	"fmt"

	"github.com/detcd/detcd/server"
)

// metricsCheckEveryUs is how often, at most, a member's metrics are read
// and checked: twice an election timeout, for little of the run's time.
const metricsCheckEveryUs = 500_000

// checkMetrics reads a member's etcd metrics through the server's
// collectors, as a scrape of /metrics would, right after a turn published
// its state, and checks them against the member: its leader and role,
// its commit and applied indexes, its revisions, what it served its
// clients, and that what only grows did not shrink within an incarnation.
func (c *checkers) checkMetrics(m *member) {
	in := m.inst
	if in == nil || m.node == nil || c.w.now < in.nextCheckUs {
		return
	}
	in.nextCheckUs = c.w.now + metricsCheckEveryUs
	r := in.Read()
	for _, why := range metricsDisagree(m, r) {
		c.fail("metrics: %s %s", m.name, why)
	}
	if in.checked {
		for _, why := range metricsShrank(in.last, r) {
			c.fail("metrics: %s %s", m.name, why)
		}
	}
	in.last, in.checked = r, true
}

// metricsDisagree says where r disagrees with the member's state and with
// what it served.
func metricsDisagree(m *member, r server.Readings) []string {
	n, s := m.node, m.inst.served
	var out []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	check(r.HasLeader == (n.Leader() != 0), "etcd_server_has_leader says %v, its leader is %d", r.HasLeader, n.Leader())
	check(r.IsLeader == (n.Leader() == m.id), "etcd_server_is_leader says %v, its leader is %d", r.IsLeader, n.Leader())
	check(r.IsLearner == n.IsLearner(), "etcd_server_is_learner says %v, it is a learner: %v", r.IsLearner, n.IsLearner())
	check(r.ProposalsCommitted == float64(n.Commit()), "etcd_server_proposals_committed_total %v, its commit index %d", r.ProposalsCommitted, n.Commit())
	check(r.ProposalsApplied == float64(n.AppliedIndex()), "etcd_server_proposals_applied_total %v, its applied index %d", r.ProposalsApplied, n.AppliedIndex())
	check(r.ProposalsApplied <= r.ProposalsCommitted, "applied %v proposals of %v committed", r.ProposalsApplied, r.ProposalsCommitted)
	check(r.CurrentRevision == float64(n.Rev()), "etcd_debugging_mvcc_current_revision %v, its revision %d", r.CurrentRevision, n.Rev())
	check(r.CompactRevision == float64(n.CompactRev()), "etcd_debugging_mvcc_compact_revision %v, its compaction %d", r.CompactRevision, n.CompactRev())
	served := []struct {
		name string
		got  float64
		want int
	}{
		{"etcd_mvcc_put_total", r.Puts, s.puts}, {"etcd_mvcc_delete_total", r.Deletes, s.deletes},
		{"etcd_mvcc_range_total", r.Ranges, s.ranges}, {"etcd_mvcc_txn_total", r.Txns, s.txns},
		{"etcd_debugging_lease_granted_total", r.LeasesGranted, s.leasesGranted},
		{"etcd_debugging_lease_revoked_total", r.LeasesRevoked, s.leasesRevoked},
	}
	for _, x := range served {
		check(x.got == float64(x.want), "%s %v, it served %d", x.name, x.got, x.want)
	}
	check(r.ProposalsPending >= 0, "etcd_server_proposals_pending %v", r.ProposalsPending)
	return out
}

// metricsShrank says which of what only grows within an incarnation
// shrank from was to now.
func metricsShrank(was, now server.Readings) []string {
	var out []string
	for _, x := range []struct {
		name     string
		was, now float64
	}{
		{"etcd_server_proposals_committed_total", was.ProposalsCommitted, now.ProposalsCommitted},
		{"etcd_server_proposals_applied_total", was.ProposalsApplied, now.ProposalsApplied},
		{"etcd_debugging_mvcc_current_revision", was.CurrentRevision, now.CurrentRevision},
		{"etcd_debugging_mvcc_compact_revision", was.CompactRevision, now.CompactRevision},
		{"etcd_server_leader_changes_seen_total", was.LeaderChanges, now.LeaderChanges},
	} {
		if x.now < x.was {
			out = append(out, fmt.Sprintf("%s went down from %v to %v", x.name, x.was, x.now))
		}
	}
	return out
}
