package mvcc

import "github.com/google/btree"

// Store is the key space. It is owned by one goroutine (core's loop); other
// goroutines read through Views.
type Store struct {
	tree       *btree.BTreeG[item]
	rev        Revision
	compactRev Revision
	// physRev is the target of the last finished physical compaction:
	// records at or below it that the index still holds are cold copies.
	physRev Revision

	hot  slabSeries
	cold slabSeries
	// coldLive is the bytes of cold records still referenced by the index;
	// cold.bytes - coldLive is garbage that a rewrite would return.
	coldLive int64

	jobs jobQueue
	txn  Txn
	// view is the newest view handed out; it is reused until the key space
	// changes.
	view *View
}

// New returns an empty store at revision 1, as etcd starts.
func New() *Store {
	s := &Store{tree: newTree(), rev: 1, compactRev: -1, physRev: -1}
	s.txn.s = s
	return s
}

// Rev is the current revision.
func (s *Store) Rev() Revision { return s.rev }

// CompactRev is the revision of the last compaction, or -1 if none.
func (s *Store) CompactRev() Revision { return s.compactRev }

// Keys is the number of keys in the index, tombstoned ones included.
func (s *Store) Keys() int { return s.tree.Len() }

// Size is the memory the key space holds in slabs: what etcd reports as
// the database size and what the space quota is checked against.
func (s *Store) Size() int64 { return s.hot.bytes + s.cold.bytes }

// SizeInUse is Size without the cold garbage a defragmentation returns.
func (s *Store) SizeInUse() int64 { return s.hot.bytes + s.coldLive }

func (s *Store) reader(rev Revision) reader {
	return reader{tree: s.tree, rev: rev, compactRev: s.compactRev}
}

// Range reads the current state (or a past revision) of the key space.
func (s *Store) Range(key, end []byte, ro RangeOptions) (*RangeResult, error) {
	return s.reader(s.rev).rangeKeys(key, end, ro)
}

// get returns the item of key, if any.
func (s *Store) get(key []byte) (item, bool) {
	return s.tree.Get(probe(stringOf(key)))
}

// changed drops the cached view: the next reader needs a new one.
func (s *Store) changed() { s.view = nil }

// Leased calls fn for every live key attached to a lease, in key order:
// a restart rebuilds the lessor's key sets from it.
func (s *Store) Leased(fn func(key string, lease LeaseID)) {
	s.tree.Ascend(func(it item) bool {
		if it.live() {
			if h, k, _ := decodeRecord(it.rec); h.lease != 0 {
				fn(k, h.lease)
			}
		}
		return true
	})
}

// BumpRevision raises the current revision by n without writing anything,
// as etcdutl snapshot restore --bump-revision does: revisions a restored
// member hands out then exceed every one its clients saw before.
func (s *Store) BumpRevision(n Revision) {
	if n > 0 {
		s.rev += n
		s.changed()
	}
}
