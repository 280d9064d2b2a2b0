package sim

import (
	"fmt"
	"slices"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The corruption checks' checker (the checks run in corruptcheck.go).
// In the simulator, no fault corrupts a member's data silently: rot and
// garbage must make a restart refuse (faults.go). So in a run without
// those faults, a CORRUPT alarm or a start the initial check refused is a
// failure: either a false alarm (the members' key spaces agree), or a
// divergence of the members' state that the check rightly found, which
// is a bug of its own. And the periodic check must find one: members
// that still disagree at the end of a liveness phase long enough for
// several rounds, with no alarm raised, fail the run.

// corruptRoundsMin is how many periodic rounds the liveness phase must
// have lasted for a divergence left at its end to count as missed.
const corruptRoundsMin = 3

// noteAlarm judges a CORRUPT alarm the cluster applied (the first time
// any member applies it).
func (c *checkers) noteAlarm(a *pb.AlarmRequest) {
	if a.Action != pb.AlarmRequest_ACTIVATE || a.Alarm != pb.AlarmType_CORRUPT || c.corruptRaised {
		return
	}
	c.corruptRaised = true
	who := fmt.Sprintf("m%d", a.MemberID)
	if a.MemberID == 0 {
		who = "the whole cluster"
	}
	c.judgeCorruption("a corruption check raised CORRUPT for " + who)
}

// corruptRefused judges a member that the initial check refused to
// start.
func (c *checkers) corruptRefused(m *member, err error) {
	c.judgeCorruption(fmt.Sprintf("%s refused to start: initial corruption check: %v", m.name, err))
}

// judgeCorruption fails a corruption check's finding, unless a fault
// damaged a member's data.
func (c *checkers) judgeCorruption(what string) {
	if c.diskDamaged() {
		c.w.trace.logf(c.w.now, "%s, after rot or garbage on a disk", what)
		return
	}
	if diverged, desc := c.divergence(); diverged {
		c.fail("%s, and the members diverged with no disk fault: %s", what, desc)
		return
	}
	c.fail("%s, but no disk fault hit any member: a false alarm (%s)", what, describeHashes(c.hashesAtCommonRev()))
}

// diskDamaged reports whether a fault that damages a member's data (rot,
// garbage) was injected in the run.
func (c *checkers) diskDamaged() bool {
	return c.w.stats.Faults[FaultRot.String()]+c.w.stats.Faults[FaultGarbage.String()] > 0
}

// checkCorruptMissed fails a run whose periodic check never raised
// CORRUPT although the members it checks still disagree after a liveness
// phase of several rounds.
func (c *checkers) checkCorruptMissed() {
	every := c.w.settings.CorruptCheckUs
	liveness := c.w.now - c.w.opts.Duration.Microseconds()
	if every == 0 || c.corruptRaised || c.diskDamaged() || liveness < corruptRoundsMin*every {
		return
	}
	if diverged, desc := c.divergence(); diverged {
		c.fail("the corruption checks missed a divergence: no CORRUPT alarm after %dus of checks every %dus: %s", liveness, every, desc)
	}
}

// memberHash is one member's hash at the revision compared.
type memberHash struct {
	name            string
	hash            uint32
	compactRev, rev int64
}

// hashesAtCommonRev hashes every member up at the newest revision all of
// them hold; members compacted past it are left out.
func (c *checkers) hashesAtCommonRev() []memberHash {
	var ups []*member
	for _, m := range c.w.live() {
		if m.up && m.node != nil {
			ups = append(ups, m)
		}
	}
	if len(ups) == 0 {
		return nil
	}
	rev := ups[0].node.Rev()
	for _, m := range ups {
		rev = min(rev, m.node.Rev())
	}
	var out []memberHash
	for _, m := range ups {
		if h, err := m.node.HashKV(rev); err == nil {
			out = append(out, memberHash{name: m.name, hash: h.Hash, compactRev: int64(h.CompactRev), rev: rev})
		}
	}
	return out
}

// divergence reports whether two members up hash differently at the
// same revision and compaction revision, and describes their hashes.
func (c *checkers) divergence() (bool, string) {
	hs := c.hashesAtCommonRev()
	first := map[int64]uint32{}
	diverged := false
	for _, h := range hs {
		f, ok := first[h.compactRev]
		if !ok {
			first[h.compactRev] = h.hash
		}
		diverged = diverged || ok && f != h.hash
	}
	return diverged, describeHashes(hs)
}

// describeHashes lists the members' hashes, by name.
func describeHashes(hs []memberHash) string {
	if len(hs) == 0 {
		return "no member up"
	}
	parts := make([]string, 0, len(hs))
	for _, h := range hs {
		parts = append(parts, fmt.Sprintf("%s %x (compacted at %d)", h.name, h.hash, h.compactRev))
	}
	slices.Sort(parts)
	return fmt.Sprintf("hashes at revision %d: %s", hs[0].rev, strings.Join(parts, ", "))
}
