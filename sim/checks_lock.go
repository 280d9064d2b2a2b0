package sim

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The lock checks judge what the Lock and Election services answered
// (lockclient.go) by the key space's history (checkers.hist), read only,
// at the end of the run. The rules are etcd's concurrency package's: a
// lock or election's holder is the key with the lowest create revision
// under name + "/", and it holds until that key is deleted (by Unlock or
// Resign, or its lease's revoke or expiry). So, for every answer the
// client got (an answer lost to a timeout says nothing):
//
//   - a Lock's key is name/lease in hex, it exists at the response's
//     revision, and no key under the name has a lower create revision
//     there: etcd answers with the header of the read that found the key
//     first in line (the acquiring transaction, or the read after the
//     wait), and a key created later has a higher create revision, so
//     what was first at that read stays first until deleted;
//   - no two holders' grants overlap: a grant holds from its revision
//     until its key's deletion (to the end of the history if never), and
//     grants of one key incarnation (a holder locking again) are one;
//   - a Campaign's leader key is first in line by the time the answer
//     came: every key before it is deleted at or below the newest
//     revision applied anywhere then, since the read that found none
//     left ran at a revision some member had applied (Campaign does not
//     check that its own key outlived the wait, as Mutex.Lock does);
//   - a Leader or Observe answer names a key at a value it held while it
//     was first in line: at some revision between the value's mod
//     revision and the answer's header revision, the key holds that
//     value and no key under the name has a lower create revision.
//     Leader reads at its header's revision; Observe's header is the
//     read's, the put's (an election that had no leader), or that of the
//     watch response carrying a new value of the key it follows, which
//     comes no earlier than the value; and once first, a key stays first
//     until deleted, so the latest revision of the range at which the
//     value is still current is the one to check.
//
// Answers are judged against the history of the epoch they were asked
// and answered in (a restore of the whole cluster rewinds the key space,
// checks_epoch.go), and only where the history reaches: a member that
// compacted the events away leaves a stretch unknown (scanHistory).
type lockChecks struct {
	grants []lockGrant
	won    []campaignWon
	seen   []leaderSeen
	// revHigh is the newest revision any member has applied so far.
	revHigh int64
}

// holderKey is a lock holder's key: name + "/" + its lease in hex.
func holderKey(name string, lease int64) string { return fmt.Sprintf("%s/%x", name, lease) }

func (c *checkers) noteLock(g lockGrant) {
	if g.key != holderKey(g.name, g.lease) {
		c.fail("lock: x%d locked %s under lease %x and got key %s", g.client, g.name, g.lease, g.key)
		return
	}
	c.locks.grants = append(c.locks.grants, g)
}

func (c *checkers) noteCampaign(g campaignWon) {
	if g.key != holderKey(g.name, g.lease) {
		c.fail("election: x%d campaigned in %s under lease %x and got key %s", g.client, g.name, g.lease, g.key)
		return
	}
	g.appliedBy = max(g.appliedBy, c.locks.revHigh)
	c.locks.won = append(c.locks.won, g)
}

func (c *checkers) noteLeader(s leaderSeen) { c.locks.seen = append(c.locks.seen, s) }

// noteApplied keeps the newest revision a member applied.
func (lc *lockChecks) noteApplied(rev int64) { lc.revHigh = max(lc.revHigh, rev) }

// checkLocks judges every epoch's answers.
func (c *checkers) checkLocks() {
	for e := 0; e <= len(c.restores); e++ {
		h := &c.hist
		if e < len(c.pastHist) {
			h = &c.pastHist[e]
		}
		c.checkLockEpoch(e, h)
	}
}

// lockTimeline is, for each key under lockSpace, the revisions of its
// changes and of its deletions, from a history.
type lockTimeline struct {
	changes, deletes map[string][]int64
}

func newLockTimeline(h *history) lockTimeline {
	t := lockTimeline{changes: map[string][]int64{}, deletes: map[string][]int64{}}
	for _, ev := range h.events {
		k := string(ev.Kv.Key)
		if !strings.HasPrefix(k, lockSpace) {
			continue
		}
		t.changes[k] = append(t.changes[k], ev.Kv.ModRevision)
		if ev.Type == mvccpb.DELETE {
			t.deletes[k] = append(t.deletes[k], ev.Kv.ModRevision)
		}
	}
	return t
}

// after is the first of revs above rev, or 0.
func after(revs []int64, rev int64) int64 {
	i, _ := slices.BinarySearch(revs, rev+1)
	if i < len(revs) {
		return revs[i]
	}
	return 0
}

// lockQuery is a judgement at a revision of the history.
type lockQuery struct {
	rev   int64
	judge func(live map[string]*mvccpb.KeyValue)
}

// firstInLine is the key under pfx with the lowest create revision (the
// lowest key among equals), nil if none.
func firstInLine(live map[string]*mvccpb.KeyValue, pfx string) *mvccpb.KeyValue {
	var first *mvccpb.KeyValue
	for k, kv := range live { //core:maporder-ok: the minimum, ties broken by key
		if !strings.HasPrefix(k, pfx) {
			continue
		}
		if first == nil || kv.CreateRevision < first.CreateRevision || kv.CreateRevision == first.CreateRevision && k < string(first.Key) {
			first = kv
		}
	}
	return first
}

// grantSpan is one holder's hold of a lock: key incarnation created at
// create, from rev until end (0: the end of the history).
type grantSpan struct {
	g        lockGrant
	create   int64
	rev, end int64
}

// checkLockEpoch judges epoch e's answers by its history h.
func (c *checkers) checkLockEpoch(e int, h *history) {
	in := func(epoch int, same bool, rev int64) bool {
		return epoch == e && same && rev >= h.baseRev && rev <= h.scannedTo
	}
	t := newLockTimeline(h)
	var qs []lockQuery
	spans := map[string][]grantSpan{}
	for _, g := range c.locks.grants {
		if !in(g.epoch, g.sameEpoch, g.rev) {
			continue
		}
		qs = append(qs, lockQuery{g.rev, func(live map[string]*mvccpb.KeyValue) {
			kv := live[g.key]
			if kv == nil {
				c.fail("lock: x%d was granted %s at revision %d, but its key %s does not exist there", g.client, g.name, g.rev, g.key)
				return
			}
			if first := firstInLine(live, g.name+"/"); string(first.Key) != g.key {
				c.fail("lock: x%d was granted %s at revision %d with key %s (created at %d), but %s (created at %d) was before it in line",
					g.client, g.name, g.rev, g.key, kv.CreateRevision, first.Key, first.CreateRevision)
				return
			}
			spans[g.name] = append(spans[g.name], grantSpan{g: g, create: kv.CreateRevision, rev: g.rev, end: after(t.deletes[g.key], g.rev)})
		}})
	}
	for _, g := range c.locks.won {
		if !in(g.epoch, g.sameEpoch, g.appliedBy) {
			continue
		}
		qs = append(qs, lockQuery{g.appliedBy, func(live map[string]*mvccpb.KeyValue) {
			if first := firstInLine(live, g.name+"/"); first != nil && first.CreateRevision < g.rev {
				c.fail("election: x%d won %s with key %s (created at %d), but %s (created at %d) was still before it at revision %d, the newest applied when the answer came",
					g.client, g.name, g.key, g.rev, first.Key, first.CreateRevision, g.appliedBy)
			}
		}})
	}
	for _, s := range c.locks.seen {
		if s.epoch != e || !s.sameEpoch {
			continue
		}
		if s.kv == nil {
			c.fail("election: %s told x%d of no key for %s", s.what, s.client, s.name)
			continue
		}
		key, mod := string(s.kv.Key), s.kv.ModRevision
		rev := s.hi
		if next := after(t.changes[key], mod); next != 0 {
			rev = min(rev, next-1)
		}
		if rev < max(s.lo, mod) {
			c.fail("election: %s told x%d that %s leads %s at value %q (mod revision %d), a value replaced at %d, before the answer's revision %d",
				s.what, s.client, key, s.name, s.kv.Value, mod, rev+1, s.lo)
			continue
		}
		if rev < h.baseRev || rev > h.scannedTo {
			continue
		}
		qs = append(qs, lockQuery{rev, func(live map[string]*mvccpb.KeyValue) {
			kv := live[key]
			if kv == nil || kv.ModRevision != mod {
				c.fail("election: %s told x%d that %s leads %s at mod revision %d, but the key does not hold that value at revision %d", s.what, s.client, key, s.name, mod, rev)
				return
			}
			if first := firstInLine(live, s.name+"/"); string(first.Key) != key {
				c.fail("election: %s told x%d that %s (created at %d) leads %s, but %s (created at %d) was before it at revision %d",
					s.what, s.client, key, kv.CreateRevision, s.name, first.Key, first.CreateRevision, rev)
			}
		}})
	}
	sweepLocks(h, qs)
	for _, name := range slices.Sorted(maps.Keys(spans)) {
		checkGrantSpans(c, name, spans[name])
	}
}

// sweepLocks replays h's events under lockSpace once, judging each query
// at its revision.
func sweepLocks(h *history, qs []lockQuery) {
	slices.SortStableFunc(qs, func(a, b lockQuery) int { return cmp.Compare(a.rev, b.rev) })
	live := map[string]*mvccpb.KeyValue{}
	for k, kv := range h.base { //core:maporder-ok: each key set once
		if strings.HasPrefix(k, lockSpace) {
			live[k] = kv
		}
	}
	i := 0
	for _, q := range qs {
		for ; i < len(h.events) && h.events[i].Kv.ModRevision <= q.rev; i++ {
			ev := h.events[i]
			k := string(ev.Kv.Key)
			switch {
			case !strings.HasPrefix(k, lockSpace):
			case ev.Type == mvccpb.DELETE:
				delete(live, k)
			default:
				live[k] = ev.Kv
			}
		}
		q.judge(live)
	}
}

// checkGrantSpans: no two holders of lock name hold it at once. Grants
// of one key incarnation are one holder's, from its first grant.
func checkGrantSpans(c *checkers, name string, spans []grantSpan) {
	type holder struct {
		key    string
		create int64
	}
	held := map[holder]*grantSpan{}
	var order []*grantSpan
	for i := range spans {
		s := &spans[i]
		k := holder{s.g.key, s.create}
		if h := held[k]; h != nil {
			h.rev = min(h.rev, s.rev)
			continue
		}
		held[k] = s
		order = append(order, s)
	}
	slices.SortStableFunc(order, func(a, b *grantSpan) int { return cmp.Compare(a.rev, b.rev) })
	var prev *grantSpan
	for _, s := range order {
		if prev != nil && (prev.end == 0 || prev.end > s.rev) {
			c.fail("lock: %s held by x%d (key %s) from revision %d until %s, and granted to x%d (key %s) at revision %d",
				name, prev.g.client, prev.g.key, prev.rev, endOf(prev.end), s.g.client, s.g.key, s.rev)
		}
		if prev == nil || prev.end != 0 && (s.end == 0 || s.end > prev.end) {
			prev = s
		}
	}
}

func endOf(rev int64) string {
	if rev == 0 {
		return "the end of the history"
	}
	return fmt.Sprintf("its deletion at %d", rev)
}
