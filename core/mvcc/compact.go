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

// Step does up to budget units of physical work (a unit is a record or a
// key visited) and reports whether work remains.
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

// stepCompact walks the keys in order from the job's cursor, compacting
// each key's history at most once per compaction, so the work is linear
// in the keys and their histories however the revisions interleave.
func (s *Store) stepCompact(j *job, budget int) (int, bool) {
	var batch []item
	more := false
	s.tree.AscendGreaterOrEqual(probe(j.cursor), func(it item) bool {
		if len(batch) >= budget {
			more = true
			return false
		}
		batch = append(batch, it)
		return true
	})
	for _, it := range batch {
		budget -= s.compactKey(it, j.target)
	}
	if len(batch) > 0 {
		j.cursor = batch[len(batch)-1].key() + "\x00"
	}
	if more {
		return 0, false
	}
	return max(budget, 0), s.finishCompact(j)
}

// compactKey drops a key's history below target: the newest record at or
// below target stays (moved to the cold slabs, so the hot ones can go),
// and everything older goes. A tombstone stays only if it is at target
// itself, as in etcd since 3.5.16 (etcd #18089): a watcher starting at
// target still gets the delete. The next compaction drops it. It returns
// the records it visited.
func (s *Store) compactKey(it item, target Revision) int {
	// Find the newest record at or below the target without copying the
	// chain: most keys need nothing.
	i, visited := 0, 1
	r := it.rec
	n := it.prev
	for recMod(r) > target {
		if n == nil {
			return visited // created after the target
		}
		r, n = n.rec, n.next
		i++
		visited++
	}
	drop := recTombstone(r) && recMod(r) < target
	if planted.Enabled && s.Bug == planted.MVCCCompactKeepsTooFew && i > 0 {
		drop = true // planted: the value at the target goes when newer ones exist
	}
	hot := recMod(r) > s.physRev
	if !hot && n == nil && !drop {
		return visited // compacted before: its kept record is cold already
	}
	recs := it.records()
	dead := recs[i+1:]
	if drop {
		dead = recs[i:]
	}
	for _, old := range dead {
		if recMod(old) <= s.physRev {
			s.coldLive -= recordFootprint(old)
		}
		s.backendDrop(old)
	}
	switch {
	case drop && i == 0:
		s.tree.Delete(it)
	case drop:
		s.tree.ReplaceOrInsert(itemOf(recs[:i]))
	case hot:
		recs[i] = s.appendCold(r)
		s.tree.ReplaceOrInsert(itemOf(recs[:i+1]))
	default:
		s.tree.ReplaceOrInsert(itemOf(recs[:i+1]))
	}
	return visited + len(recs)
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
	var batch []item
	stopped := false
	s.tree.AscendGreaterOrEqual(probe(j.cursor), func(it item) bool {
		if len(batch) >= budget {
			stopped = true
			return false
		}
		batch = append(batch, it)
		return true
	})
	for _, it := range batch {
		recs := it.records()
		last := len(recs) - 1
		if recMod(recs[last]) <= s.physRev {
			recs[last] = copyRecord(&j.next, recs[last])
			s.tree.ReplaceOrInsert(itemOf(recs))
		}
	}
	budget -= len(batch)
	if len(batch) > 0 {
		j.cursor = batch[len(batch)-1].key() + "\x00"
	}
	if stopped {
		return 0, false
	}
	s.cold = j.next
	if j.defrag {
		s.backendSize = s.backendInUse
	}
	s.coldLive = 0
	for _, sl := range s.cold.slabs {
		s.coldLive += int64(len(sl.buf))
	}
	return budget, true
}

// appendCold copies a record into the cold slabs.
func (s *Store) appendCold(r record) record {
	c := copyRecord(&s.cold, r)
	s.coldLive += recordFootprint(c)
	return c
}

func copyRecord(ss *slabSeries, r record) record {
	dst := ss.append(len(r), 0)
	copy(dst, r)
	return asRecord(dst)
}

// recordFootprint is the slab space a record takes, length prefix included.
func recordFootprint(r record) int64 {
	return int64(uvarintLen(uint64(len(r))) + len(r))
}
