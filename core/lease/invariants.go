package lease

import "fmt"

// CheckInvariants reports the first broken invariant of the lessor; core
// calls it in builds with the invariants tag:
//   - both heaps keep the heap order;
//   - a lessor that is not the primary holds no timers and no expiry;
//   - on the primary every lease has an expiry and a live entry in the
//     expiry heap: at its expiry, or at its revokeAt once its revoke was
//     proposed, so no lease is ever forgotten;
//   - MinTTL <= TTL and 0 <= RemainingTTL <= TTL.
func (le *Lessor) CheckInvariants() error {
	for _, h := range []timeHeap{le.expiries, le.checkpoints} {
		for i := 1; i < len(h); i++ {
			if h.Less(i, (i-1)/2) {
				return fmt.Errorf("lease: heap order broken at %d", i)
			}
		}
	}
	if !le.primary && len(le.expiries)+len(le.checkpoints) > 0 {
		return fmt.Errorf("lease: %d expiry and %d checkpoint timers on a lessor that is not the primary", len(le.expiries), len(le.checkpoints))
	}
	queued := make(map[timed]bool, len(le.expiries))
	for _, t := range le.expiries {
		queued[t] = true
	}
	for _, l := range le.Leases() {
		if err := le.checkLease(l, queued); err != nil {
			return err
		}
	}
	return nil
}

func (le *Lessor) checkLease(l *Lease, queued map[timed]bool) error {
	switch {
	case l.TTL < le.cfg.MinTTL:
		return fmt.Errorf("lease %x: TTL %d below the minimum %d", l.ID, l.TTL, le.cfg.MinTTL)
	case l.RemainingTTL < 0 || l.RemainingTTL > l.TTL:
		return fmt.Errorf("lease %x: remaining TTL %d outside [0, %d]", l.ID, l.RemainingTTL, l.TTL)
	case !le.primary && l.expiry != forever:
		return fmt.Errorf("lease %x: expiry %d on a lessor that is not the primary", l.ID, l.expiry)
	case !le.primary:
		return nil
	case l.expiry == forever:
		return fmt.Errorf("lease %x: no expiry on the primary", l.ID)
	}
	at := l.expiry
	if l.revokeAt != 0 {
		at = l.revokeAt
	}
	if !queued[timed{at: at, id: l.ID}] {
		return fmt.Errorf("lease %x: no timer at %d in the expiry heap", l.ID, at)
	}
	return nil
}
