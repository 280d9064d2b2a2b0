package sim

import (
	"bytes"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func (c *watchClient) contains(key []byte) bool {
	k := string(key)
	if c.end == "" {
		return k == c.key
	}
	return k >= c.key && k < c.end
}

func (c *watchClient) wants(ev *mvccpb.Event) bool {
	if ev.Type == mvccpb.Event_PUT {
		return !c.noPut
	}
	return !c.noDel
}

// checkWatches compares what every watcher got with the history the
// members converged on: etcd's guarantees, ordered (revisions increase),
// unique (no event twice), reliable (no event missing in a watched range
// up to the last revision delivered), atomic (a revision's events in one
// response), bookmarkable (a progress notification at H only after every
// event up to H), and exact (each event, and prev_kv, as it happened).
func (c *checkers) checkWatches() {
	if len(c.w.watchers) == 0 {
		return
	}
	// The epochs' histories, one after the other: a restore bumps the
	// revision above every one before it (checks_epoch.go).
	var history []*mvccpb.Event
	// prev[i] is the key's value before history[i].
	var prev []*mvccpb.KeyValue
	for _, h := range append(slices.Clone(c.pastHist), c.hist) {
		state := map[string]*mvccpb.KeyValue{}
		for k, kv := range h.base { //core:maporder-ok: a copy
			state[k] = kv
		}
		for _, ev := range h.events {
			prev = append(prev, state[string(ev.Kv.Key)])
			history = append(history, ev)
			if ev.Type == mvccpb.Event_PUT {
				state[string(ev.Kv.Key)] = ev.Kv
			} else {
				delete(state, string(ev.Kv.Key))
			}
		}
	}
	for _, wc := range c.w.watchers {
		if wc.sessions > 0 {
			c.checkWatcher(wc, history, prev)
			c.checkWatchResumes(wc)
		}
	}
}

// copied reports whether the checkers copied the history at rev: it is
// in an epoch's, above where that history starts (a compaction that
// outran the copying moves it up) and, but for the current epoch's, at
// or below where the copying got to before the restore.
func (c *checkers) copied(rev int64) bool {
	hs := append(slices.Clone(c.pastHist), c.hist)
	for i, h := range hs {
		if rev > h.baseRev && (i == len(hs)-1 || rev <= h.scannedTo) {
			return true
		}
	}
	return false
}

// checkWatchResumes: a watcher created after a restore from a revision
// below the restore's bumped one is canceled as compacted, at or above
// it, before it delivers any event (etcd's --mark-compacted).
func (c *checkers) checkWatchResumes(wc *watchClient) {
	var owed, from int64
	var restore restorePoint
	for _, rec := range wc.log {
		switch {
		case rec.created:
			owed, from = 0, rec.from
			for _, p := range c.restores {
				if p.at <= rec.at && rec.from > 0 && rec.from < p.bumped {
					owed, restore = p.bumped, p
				}
			}
		case rec.compactRev != 0:
			if rec.compactRev >= owed {
				owed = 0
			}
		case owed != 0 && len(rec.events) > 0:
			ev := rec.events[0]
			c.fail("w%d: a watch from %d, created after the %s, delivered %s %s@%d: it must be canceled as compacted at %d first",
				wc.id, from, restore, ev.Type, ev.Kv.Key, ev.Kv.ModRevision, owed)
			return
		}
	}
}

func (c *checkers) checkWatcher(wc *watchClient, history []*mvccpb.Event, prev []*mvccpb.KeyValue) {
	var want []int // indexes into history
	perRev := map[int64]int{}
	for i, ev := range history {
		r := ev.Kv.ModRevision
		if r >= wc.expectFrom && r <= wc.last && !wc.inHole(r) && wc.contains(ev.Kv.Key) && wc.wants(ev) {
			want = append(want, i)
			perRev[r]++
		}
	}
	got := 0
	for _, rec := range wc.log {
		if rec.created || rec.compactRev != 0 {
			continue
		}
		if rec.progress {
			for got < len(want) && history[want[got]].Kv.ModRevision <= rec.rev {
				c.fail("w%d: progress at %d before event %s@%d was delivered", wc.id, rec.rev, history[want[got]].Kv.Key, history[want[got]].Kv.ModRevision)
				return
			}
			continue
		}
		inResp := map[int64]int{}
		for _, ev := range rec.events {
			if !c.copied(ev.Kv.ModRevision) {
				continue // compacted before the checkers copied it
			}
			if got >= len(want) {
				c.fail("w%d: unexpected event %s %s@%d (watched [%s,%s) from %d to %d)", wc.id, ev.Type, ev.Kv.Key, ev.Kv.ModRevision, wc.key, wc.end, wc.expectFrom, wc.last)
				return
			}
			i := want[got]
			exp := history[i]
			// etcd reads prev_kv at the revision before the event: gone
			// if a compaction above it was applied before the response.
			_, prevGone := c.compactedAbove(ev.Kv.ModRevision-1, rec.at, false)
			if err := sameEvent(ev, exp, prev[i], wc.prevKV, prevGone); err != nil {
				c.fail("w%d: event %d: %v", wc.id, got, err)
				return
			}
			inResp[ev.Kv.ModRevision]++
			got++
		}
		for r, n := range inResp { //core:maporder-ok: any order finds the same failure
			if n != perRev[r] {
				c.fail("w%d: revision %d split across responses (%d of %d events in one)", wc.id, r, n, perRev[r])
				return
			}
		}
	}
	if got != len(want) {
		exp := history[want[got]]
		c.fail("w%d: missed event %s %s@%d (watched [%s,%s) from %d to %d, got %d of %d)", wc.id, exp.Type, exp.Kv.Key, exp.Kv.ModRevision, wc.key, wc.end, wc.expectFrom, wc.last, got, len(want))
	}
}

func sameEvent(got, want *mvccpb.Event, prev *mvccpb.KeyValue, prevKV, prevGone bool) error {
	g, w := got.Kv, want.Kv
	if got.Type != want.Type || !bytes.Equal(g.Key, w.Key) || g.ModRevision != w.ModRevision || !bytes.Equal(g.Value, w.Value) ||
		g.CreateRevision != w.CreateRevision || g.Version != w.Version || g.Lease != w.Lease {
		return fmt.Errorf("got %s %s=%s@%d (c%d v%d), want %s %s=%s@%d (c%d v%d)", got.Type, g.Key, g.Value, g.ModRevision, g.CreateRevision, g.Version,
			want.Type, w.Key, w.Value, w.ModRevision, w.CreateRevision, w.Version)
	}
	if !prevKV {
		if got.PrevKv != nil {
			return fmt.Errorf("prev_kv on %s@%d, not asked for", g.Key, g.ModRevision)
		}
		return nil
	}
	isCreate := want.Type == mvccpb.Event_PUT && w.CreateRevision == w.ModRevision
	switch {
	case isCreate || prev == nil:
		if got.PrevKv != nil {
			return fmt.Errorf("prev_kv %s@%d on %s@%d, want none", got.PrevKv.Value, got.PrevKv.ModRevision, g.Key, g.ModRevision)
		}
	case got.PrevKv == nil && prevGone:
	case got.PrevKv == nil:
		return fmt.Errorf("no prev_kv on %s@%d, want %s@%d", g.Key, g.ModRevision, prev.Value, prev.ModRevision)
	case got.PrevKv.ModRevision != prev.ModRevision || !bytes.Equal(got.PrevKv.Value, prev.Value):
		return fmt.Errorf("prev_kv %s@%d on %s@%d, want %s@%d", got.PrevKv.Value, got.PrevKv.ModRevision, g.Key, g.ModRevision, prev.Value, prev.ModRevision)
	}
	return nil
}

// inHole reports whether rev is in a stretch a compaction took from the
// watcher: it asked to resume there, and was told to restart at the
// compaction instead.
func (c *watchClient) inHole(rev int64) bool {
	for _, h := range c.holes {
		if rev >= h[0] && rev < h[1] {
			return true
		}
	}
	return false
}
