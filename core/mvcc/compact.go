package mvcc

// Compaction has a logical and a physical part. Compact moves the
// compaction point at once (reads below it fail from then on) and queues a
// job; Step does the physical work a budget at a time, so the loop never
// stalls on a large key space. Physical progress never changes what a read
// returns, which is what keeps members' hashes equal whatever their
// progress.

import "github.com/detcd/detcd/core/internal/planted"

type jobKind uint8

const (
	jobCompact jobKind = iota + 1
	jobRewriteCold
)

type job struct {
	kind   jobKind
	target Revision
	// cursor is the next key the job visits.
	cursor string
	// dead is the rest of a chain compaction cut out of the index whose
	// records are still to be accounted for: a long history is let go a
	// budget at a time like everything else.
	dead deadChain
	// next is the cold series a rewrite fills.
	next slabSeries
	// done is called when the job finishes.
	waiters []func()
	// defrag marks a rewrite a client asked for: it shrinks the modelled
	// database file as etcd's defragmentation does.
	defrag bool
}

// jobQueue holds physical work in the order it was asked for.
type jobQueue struct{ q []*job }

func (jq *jobQueue) push(j *job) { jq.q = append(jq.q, j) }
func (jq *jobQueue) head() *job {
	if len(jq.q) == 0 {
		return nil
	}
	return jq.q[0]
}
func (jq *jobQueue) pop() {
	jq.q[0] = nil
	jq.q = jq.q[1:]
}

// coldRewriteSlackBytes keeps small stores from rewriting cold slabs over a
// few dead records.
const coldRewriteSlackBytes = 4 * SlabBytes

// Compact moves the compaction point to rev. Reads below rev fail from now
// on; the memory is returned by later Steps. onDone, if not nil, runs when
// the physical work for this compaction is finished.
func (s *Store) Compact(rev Revision, onDone func()) error {
	if rev <= s.compactRev {
		return ErrCompacted
	}
	if rev > s.rev {
		return ErrFutureRev
	}
	s.compactRev = rev
	j := &job{kind: jobCompact, target: rev}
	if onDone != nil {
		j.waiters = append(j.waiters, onDone)
	}
	s.jobs.push(j)
	s.changed()
	return nil
}

// Pending reports whether physical work is waiting for Step.
func (s *Store) Pending() bool { return s.jobs.head() != nil }

// stepKeysMax is how many index items a step takes from the tree at once:
// a step that runs out of budget early wastes no more than this.
const stepKeysMax = 256

// Step does about budget units of physical work and reports whether work
// remains. A unit is a record visited, copied or let go, a key counting
// as at least one, so a step costs the same whether the keys it meets
// have one revision or thousands. A step may go over budget by the
// records of one key newer than the compaction point, which it copies to
// rebuild the key's chain.
func (s *Store) Step(budget int) bool {
	for budget > 0 {
		j := s.jobs.head()
		if j == nil {
			return false
		}
		var done bool
		switch j.kind {
		case jobCompact:
			budget, done = s.stepCompact(j, budget)
		case jobRewriteCold:
			budget, done = s.stepRewrite(j, budget)
		}
		if done {
			s.jobs.pop()
			for _, w := range j.waiters {
				w()
			}
		}
	}
	return s.Pending()
}

// Defragment queues a rewrite of the cold slabs, returning their garbage,
// and calls onDone when it is finished.
func (s *Store) Defragment(onDone func()) {
	j := &job{kind: jobRewriteCold, defrag: true}
	if onDone != nil {
		j.waiters = append(j.waiters, onDone)
	}
	s.jobs.push(j)
}

// walkKeys calls visit for the keys from the job's cursor on, in order,
// while budget lasts, moving the cursor past each key visited. visit
// returns the units it used. walkKeys returns the budget left and whether
// every key has been visited.
func (s *Store) walkKeys(j *job, budget int, visit func(it item, budget int) int) (int, bool) {
	batch := make([]item, 0, min(budget, stepKeysMax))
	for budget > 0 {
		batch = batch[:0]
		s.tree.AscendGreaterOrEqual(probe(j.cursor), func(it item) bool {
			batch = append(batch, it)
			return len(batch) < cap(batch)
		})
		if len(batch) == 0 {
			return budget, true
		}
		// Visiting a key replaces only that key's item, so the items
		// taken ahead of it are still the tree's.
		for _, it := range batch {
			if budget <= 0 {
				return 0, false
			}
			j.cursor = it.key() + "\x00"
			budget -= visit(it, budget)
		}
	}
	return 0, false
}

// stepCompact walks the keys in order from the job's cursor, compacting
// each key's history at most once per compaction, so the work is linear
// in the keys and their histories however the revisions interleave.
func (s *Store) stepCompact(j *job, budget int) (int, bool) {
	budget -= s.letGo(j, budget)
	if budget <= 0 {
		return 0, false
	}
	budget, walked := s.walkKeys(j, budget, func(it item, budget int) int {
		used := s.compactKey(j, it)
		return used + s.letGo(j, budget-used)
	})
	if !walked || j.dead.ok {
		return 0, false
	}
	return max(budget, 0), s.finishCompact(j)
}

// compactKey drops a key's history below the job's target: the newest
// record at or below the target stays (moved to the cold slabs, so the hot
// ones can go), and everything older goes. A tombstone stays only if it is
// at the target itself, as in etcd since 3.5.16 (etcd #18089): a watcher
// starting at the target still gets the delete. The next compaction drops
// it. The records newer than the target stay where they are: the new item
// stops following their links at the target. The dropped records are
// left in j.dead for letGo. compactKey returns the records it visited and
// copied.
func (s *Store) compactKey(j *job, it item) int {
	above, visited := 0, 1
	r, o, ok := it.rec, it.ord, true
	for recMod(r) > j.target {
		if r, o, ok = s.links.older(it, o); !ok {
			return visited // created after the target
		}
		above++
		visited++
	}
	drop := recTombstone(r) && recMod(r) < j.target
	if planted.Enabled && s.Bug == planted.MVCCCompactKeepsTooFew && above > 0 {
		drop = true // planted: the value at the target goes when newer ones exist
	}
	hot := o != noOrd
	if !hot && !drop {
		return visited // compacted before: its kept record is cold already
	}
	j.dead = deadChain{it: it, ord: o}
	j.dead.next(&s.links)
	cold, copied := r, 0
	switch {
	case drop:
		s.forget(r)
		cold = ""
	case hot:
		cold, copied = s.appendCold(r), 1
	}
	switch {
	case above > 0:
		s.tree.ReplaceOrInsert(item{rec: it.rec, ord: it.ord, cold: cold, low: j.target, pfx: it.pfx})
	case cold != "":
		s.tree.ReplaceOrInsert(coldItem(cold, j.target))
	default:
		s.tree.Delete(it)
	}
	return visited + copied
}

// deadChain is the rest of a key's chain that compaction cut off: the
// records of it older than the one of ordinal ord.
type deadChain struct {
	it  item
	ord uint64
	rec record
	ok  bool
}

// next moves to the next older record.
func (d *deadChain) next(hx *hotIndex) {
	d.rec, d.ord, d.ok = hx.older(d.it, d.ord)
}

// letGo accounts for up to budget records of the chain compaction cut off
// last, and returns how many it did.
func (s *Store) letGo(j *job, budget int) int {
	n := 0
	for ; j.dead.ok && n < budget; n++ {
		s.forget(j.dead.rec)
		j.dead.next(&s.links)
	}
	return n
}

// forget accounts for a record compaction dropped from the index.
func (s *Store) forget(r record) {
	if recMod(r) <= s.physRev {
		s.coldLive -= recordFootprint(r)
	}
	s.backendDrop(r)
}

func (s *Store) finishCompact(j *job) bool {
	// A hot slab can go once the next one starts below the target: all its
	// records are below the target, dead or moved to the cold slabs. The
	// target's own records stay for watchers that start there.
	drop := 0
	for drop+1 < len(s.hot.slabs) && s.hot.slabs[drop+1].first < j.target {
		drop++
	}
	s.hot.dropFront(drop)
	if len(s.hot.slabs) > 0 {
		s.links.dropBefore(s.hot.seq0, s.hot.slabs[0].firstOrd)
	}
	s.physRev = j.target
	if s.cold.bytes > 2*s.coldLive+coldRewriteSlackBytes && !s.rewriteQueued() {
		s.jobs.push(&job{kind: jobRewriteCold})
	}
	return true
}

func (s *Store) rewriteQueued() bool {
	for _, j := range s.jobs.q {
		if j.kind == jobRewriteCold {
			return true
		}
	}
	return false
}

// stepRewrite copies every cold record still in use into fresh slabs, in
// key order, so that the old cold slabs can be dropped.
func (s *Store) stepRewrite(j *job, budget int) (int, bool) {
	budget, walked := s.walkKeys(j, budget, func(it item, _ int) int {
		if it.cold == "" {
			return 1
		}
		c := copyRecord(&j.next, it.cold)
		if it.ord == noOrd {
			it.rec = c
		}
		it.cold = c
		s.tree.ReplaceOrInsert(it)
		return 2
	})
	if !walked {
		return 0, false
	}
	s.cold = j.next
	if j.defrag {
		s.backendSize = s.backendInUse
		s.defragged = planted.Enabled && s.Bug == planted.MVCCHashSkipsAfterDefrag
	}
	s.coldLive = 0
	for _, sl := range s.cold.slabs {
		s.coldLive += int64(len(sl.buf))
	}
	return max(budget, 0), true
}

// appendCold copies a record into the cold slabs.
func (s *Store) appendCold(r record) record {
	c := copyRecord(&s.cold, r)
	s.coldLive += recordFootprint(c)
	return c
}

func copyRecord(ss *slabSeries, r record) record {
	dst, _, _ := ss.append(len(r), 0)
	copy(dst, r)
	return asRecord(dst)
}

// recordFootprint is the slab space a record takes, length prefix included.
func recordFootprint(r record) int64 {
	return int64(uvarintLen(uint64(len(r))) + len(r))
}
