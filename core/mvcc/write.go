package mvcc

// Txn is a write transaction: every change it makes shares one new main
// revision. Reads through it see its own changes. There is one Txn per
// store, reused; it is open between Write and End.
type Txn struct {
	s       *Store
	begin   Revision
	changes []record
	// leases records every change of a key's lease, for the lessor.
	leases []LeaseChange
	open   bool
}

// LeaseChange is a key moving from one lease to another (0: none).
type LeaseChange struct {
	Key      string
	Old, New LeaseID
}

// Write opens the store's write transaction.
func (s *Store) Write() *Txn {
	t := &s.txn
	if t.open {
		panic("mvcc: write transaction already open")
	}
	t.open, t.begin, t.changes, t.leases = true, s.rev, t.changes[:0], t.leases[:0]
	return t
}

// Rev is the revision reads in the transaction see: the new revision once
// something changed.
func (t *Txn) Rev() Revision {
	if len(t.changes) > 0 {
		return t.begin + 1
	}
	return t.begin
}

// Changes are the records the transaction wrote so far, in order. They
// alias slab memory and stay valid after End.
func (t *Txn) Changes() []record { return t.changes }

// LeaseChanges are the keys whose lease the transaction changed. They
// stay valid until the next Write.
func (t *Txn) LeaseChanges() []LeaseChange { return t.leases }

// Range reads the key space as the transaction sees it.
func (t *Txn) Range(key, end []byte, ro RangeOptions) (*RangeResult, error) {
	return t.s.reader(t.Rev()).rangeKeys(key, end, ro)
}

// Put writes key=value attached to lease at the transaction's revision.
func (t *Txn) Put(key, value []byte, lease LeaseID) {
	s := t.s
	old, found := s.get(key)
	h := recHeader{mod: t.begin + 1, sub: int64(len(t.changes)), lease: lease}
	var oldLease LeaseID
	if found && old.live() {
		oh, _, _ := decodeRecord(old.rec)
		h.create, h.version, oldLease = oh.create, oh.version+1, oh.lease
	} else {
		h.create, h.version = h.mod, 1
	}
	if oldLease != lease {
		t.leases = append(t.leases, LeaseChange{Key: string(key), Old: oldLease, New: lease})
	}
	if !found {
		old = item{ord: noOrd}
	}
	r, o := s.appendHot(&h, key, value, old.ord)
	s.tree.ReplaceOrInsert(old.pushed(r, o))
	t.changes = append(t.changes, r)
}

// DeleteRange tombstones every key that exists in [key, end) (see Range for
// what end means) and returns how many there were.
func (t *Txn) DeleteRange(key, end []byte) int64 {
	s := t.s
	var doomed []item
	visit(s.tree, key, end, func(it item) bool {
		if it.live() {
			doomed = append(doomed, it)
		}
		return true
	})
	for _, it := range doomed {
		if oh, k, _ := decodeRecord(it.rec); oh.lease != 0 {
			t.leases = append(t.leases, LeaseChange{Key: k, Old: oh.lease})
		}
		h := recHeader{tombstone: true, mod: t.begin + 1, sub: int64(len(t.changes))}
		r, o := s.appendHot(&h, bytesOf(it.key()), nil, it.ord)
		s.tree.ReplaceOrInsert(it.pushed(r, o))
		t.changes = append(t.changes, r)
	}
	return int64(len(doomed))
}

// End closes the transaction and returns the store's revision after it.
func (t *Txn) End() Revision {
	if !t.open {
		panic("mvcc: End without Write")
	}
	t.open = false
	if len(t.changes) > 0 {
		t.s.rev = t.begin + 1
		t.s.changed()
	}
	return t.s.rev
}

// appendHot writes a record at the end of the hot log, linked to the
// key's record of ordinal prev, and returns it and its ordinal.
func (s *Store) appendHot(h *recHeader, key, value []byte, prev uint64) (record, uint64) {
	n := recordSize(h, len(key), len(value))
	dst, off, fresh := s.hot.append(n, h.mod)
	if fresh {
		sl := s.hot.slabs[len(s.hot.slabs)-1]
		sl.firstOrd = s.links.next
		s.links.addSlab(sl.buf)
	}
	encodeRecord(dst, h, key, value)
	r := asRecord(dst)
	s.backendAdd(r)
	return r, s.links.add(s.hot.lastSeq(), off, prev)
}
