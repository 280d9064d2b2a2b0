package mvcc

// View is an immutable snapshot of the key space that any goroutine may
// read while the store moves on.
type View struct {
	reader
	// hot is the hot log as it was, for scans by revision; only views made
	// by Snapshot carry it.
	hot []slab
	// physRev is the compaction point records below which are cold copies.
	physRev Revision
	// defragged: the store had been defragmented (a planted bug's).
	defragged bool
}

// View returns a snapshot of the current state. Views are cheap to make
// (a lazy btree clone) but each one makes the next writes copy the tree
// nodes they touch, so the store hands out the same view until the key
// space changes.
func (s *Store) View() *View {
	if s.view == nil {
		s.view = &View{reader: reader{tree: s.tree.Clone(), hx: s.links, rev: s.rev, compactRev: s.compactRev, bug: s.Bug}, physRev: s.physRev}
	}
	return s.view
}

// Snapshot returns a view that can also scan the history by revision, for
// checkpoints and hashes.
func (s *Store) Snapshot() *View {
	v := *s.View()
	v.hot = s.hot.frozen()
	v.defragged = s.defragged
	return &v
}

// Rev is the revision the view reads at.
func (v *View) Rev() Revision { return v.rev }

// CompactRev is the compaction revision the view enforces.
func (v *View) CompactRev() Revision { return v.compactRev }

// Range reads the view. See Store.Range.
func (v *View) Range(key, end []byte, ro RangeOptions) (*RangeResult, error) {
	return v.rangeKeys(key, end, ro)
}

// scanHot calls fn for every record in the view's hot log above from, in
// revision order, until fn returns false.
func (v *View) scanHot(from Revision, fn func(r record) bool) {
	start := 0
	for i := range v.hot {
		if v.hot[i].first != 0 && v.hot[i].first <= from {
			start = i
		}
	}
	for i := start; i < len(v.hot); i++ {
		stop := false
		slabRecords(v.hot[i].buf, 0, func(r record, _ int) bool {
			if recMod(r) <= from {
				return true
			}
			if !fn(r) {
				stop = true
				return false
			}
			return true
		})
		if stop {
			return
		}
	}
}
