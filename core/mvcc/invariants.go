package mvcc

import (
	"fmt"
)

// CheckInvariants walks the whole store and reports the first broken
// invariant. It costs a pass over every record, so core calls it only in
// builds with the invariants tag (and tests call it directly):
//   - revisions: 1 <= rev, physRev <= compactRev <= rev;
//   - each key's chain runs newest first with strictly falling (mod, sub),
//     every record at or below rev and carrying the key it is filed under;
//   - generations: a put after a put of the same key keeps its create
//     revision and adds one to its version; a put after a tombstone, or
//     a key's oldest put above the compaction revision, starts a
//     generation;
//   - physical compaction: at most one record per key at or below
//     physRev, and a tombstone there only exactly at physRev (etcd keeps
//     that one for watchers starting at the compaction revision);
//   - accounting: 0 <= coldLive <= cold slab bytes, and
//     0 <= SizeInUse <= Size.
func (s *Store) CheckInvariants() error {
	if s.txn.open {
		return fmt.Errorf("mvcc: invariants checked inside an open transaction")
	}
	if err := s.checkRevisions(); err != nil {
		return err
	}
	var err error
	s.tree.Ascend(func(it item) bool {
		err = s.checkItem(it)
		return err == nil
	})
	return err
}

func (s *Store) checkRevisions() error {
	switch {
	case s.rev < 1:
		return fmt.Errorf("mvcc: revision %d below 1", s.rev)
	case s.compactRev > s.rev:
		return fmt.Errorf("mvcc: compacted at %d, past the revision %d", s.compactRev, s.rev)
	case s.physRev > s.compactRev:
		return fmt.Errorf("mvcc: physically compacted at %d, past the compaction %d", s.physRev, s.compactRev)
	case s.coldLive < 0 || s.coldLive > s.cold.bytes:
		return fmt.Errorf("mvcc: %d live cold bytes, cold slabs hold %d", s.coldLive, s.cold.bytes)
	case s.backendInUse < 0 || s.backendInUse > s.backendSize:
		return fmt.Errorf("mvcc: backend in use %d, size %d", s.backendInUse, s.backendSize)
	}
	return nil
}

func (s *Store) checkItem(it item) error {
	key := it.key()
	if it.pfx != keyPrefix(key) {
		return fmt.Errorf("mvcc: key %q has prefix %#x in the index, not %#x", key, it.pfx, keyPrefix(key))
	}
	recs := s.links.records(it)
	belowPhys := 0
	for i, r := range recs {
		h, k, _ := decodeRecord(r)
		switch {
		case k != key:
			return fmt.Errorf("mvcc: key %q holds a record of key %q", key, k)
		case h.mod > s.rev:
			return fmt.Errorf("mvcc: key %q has a record at %d, past the revision %d", key, h.mod, s.rev)
		}
		if h.mod <= s.physRev {
			belowPhys++
			if h.tombstone && h.mod < s.physRev {
				return fmt.Errorf("mvcc: key %q keeps a tombstone at %d below the compaction at %d", key, h.mod, s.physRev)
			}
		}
		if i+1 < len(recs) {
			if err := checkPair(key, h, recs[i+1]); err != nil {
				return err
			}
		} else if !h.tombstone && h.mod > s.compactRev && (h.create != h.mod || h.version != 1) {
			return fmt.Errorf("mvcc: key %q's oldest record at %d is a put with create %d version %d", key, h.mod, h.create, h.version)
		}
	}
	if belowPhys > 1 {
		return fmt.Errorf("mvcc: key %q keeps %d records at or below the compaction at %d", key, belowPhys, s.physRev)
	}
	return nil
}

// checkPair checks a record h of key against the one before it.
func checkPair(key string, h recHeader, older record) error {
	o, _, _ := decodeRecord(older)
	switch {
	case o.mod > h.mod || o.mod == h.mod && o.sub >= h.sub:
		return fmt.Errorf("mvcc: key %q has %d.%d after %d.%d", key, h.mod, h.sub, o.mod, o.sub)
	case h.tombstone:
		return nil
	case o.tombstone && (h.create != h.mod || h.version != 1):
		return fmt.Errorf("mvcc: key %q put at %d after a delete has create %d version %d", key, h.mod, h.create, h.version)
	case !o.tombstone && (h.create != o.create || h.version != o.version+1):
		return fmt.Errorf("mvcc: key %q put at %d has create %d version %d after create %d version %d", key, h.mod, h.create, h.version, o.create, o.version)
	}
	return nil
}
