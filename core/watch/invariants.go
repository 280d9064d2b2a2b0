package watch

import (
	"fmt"
	"maps"
	"slices"
)

// CheckInvariants reports the first broken invariant of the hub; core
// calls it in builds with the invariants tag:
//   - every watcher in a synced list is synced, not cancelled, and sits
//     at its slot, in the list its key or range belongs to;
//   - every live watcher of an open stream is either in a synced list or
//     waiting in the unsynced list (which may also hold watchers that
//     were cancelled or synced since, dropped lazily);
//   - a stream's credit never exceeds its maximum.
func (h *Hub) CheckInvariants() error {
	check := func(ws []*watcher, single bool) error {
		for i, w := range ws {
			switch {
			case !w.synced || w.cancelled:
				return fmt.Errorf("watch: watcher %d in a synced list is synced=%v cancelled=%v", w.id, w.synced, w.cancelled)
			case w.slot != i:
				return fmt.Errorf("watch: watcher %d at %d of its synced list records slot %d", w.id, i, w.slot)
			case w.single != single:
				return fmt.Errorf("watch: watcher %d (single=%v) in the wrong synced list", w.id, w.single)
			}
		}
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(h.byKey)) {
		if err := check(h.byKey[k], true); err != nil {
			return err
		}
	}
	if err := check(h.ranges, false); err != nil {
		return err
	}
	waiting := make(map[*watcher]bool, len(h.unsynced))
	for _, w := range h.unsynced {
		waiting[w] = true
	}
	for _, s := range h.order {
		if s.credit > s.max {
			return fmt.Errorf("watch: stream %d has credit %d above its maximum %d", s.id, s.credit, s.max)
		}
		for _, w := range s.sorted() {
			if !w.synced && !waiting[w] {
				return fmt.Errorf("watch: watcher %d of stream %d is neither synced nor waiting to catch up", w.id, s.id)
			}
		}
	}
	return nil
}
