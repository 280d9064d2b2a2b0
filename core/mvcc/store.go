package mvcc

import "github.com/google/btree"

// Store is the key space. It is owned by one goroutine (core's loop); other
// goroutines read through Views.
type Store struct {
	// Bug names a planted bug (core/internal/planted); empty but in
	// detcdbugs builds.
	Bug string

	tree       *btree.BTreeG[item]
	rev        Revision
	compactRev Revision
	// physRev is the target of the last finished physical compaction:
	// records at or below it that the index still holds are cold copies.
	physRev Revision

	hot  slabSeries
	cold slabSeries
	// links find the hot log's records by ordinal (links.go).
	links hotIndex
	// coldLive is the bytes of cold records still referenced by the index;
	// cold.bytes - coldLive is garbage that a rewrite would return.
	coldLive int64

	// backendInUse models the part of etcd's database file its key bucket
	// uses: the bolt pages of every record the index holds (backend.go).
	backendInUse int64
	// backendSize models the file's size: the most backendInUse has been
	// since the last defragmentation, as a file keeps its freed pages.
	backendSize int64
	// defragged is set by a defragmentation in builds that plant
	// MVCCHashSkipsAfterDefrag.
	defragged bool

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

// Size is what the key space adds to etcd's database file, in etcd's
// database size, which the space quota is checked against. It is a model
// of etcd's file (backend.go), not detcd's memory: it grows as etcd's
// would and only a defragmentation shrinks it.
func (s *Store) Size() int64 { return s.backendSize }

// SizeInUse is the part of Size the key space uses: what compaction
// frees comes off it at once.
func (s *Store) SizeInUse() int64 { return s.backendInUse }

func (s *Store) reader(rev Revision) reader {
	return reader{tree: s.tree, hx: s.links, rev: rev, compactRev: s.compactRev, bug: s.Bug}
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
