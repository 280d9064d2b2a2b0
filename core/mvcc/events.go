package mvcc

import (
	"sort"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core/internal/planted"
)

// event turns a record into a watch event as etcd builds them: a delete's
// key-value holds only the key and the revision.
func event(r record) *mvccpb.Event {
	h, k, v := decodeRecord(r)
	if h.tombstone {
		return &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: bytesOf(k), ModRevision: int64(h.mod)}}
	}
	return &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: &mvccpb.KeyValue{
		Key: bytesOf(k), Value: bytesOf(v), CreateRevision: int64(h.create), ModRevision: int64(h.mod),
		Version: h.version, Lease: int64(h.lease),
	}}
}

// Events are the transaction's changes as watch events, in order.
func (t *Txn) Events() []*mvccpb.Event {
	evs := make([]*mvccpb.Event, len(t.changes))
	for i, r := range t.changes {
		evs[i] = event(r)
	}
	return evs
}

// ChangedKeys calls fn with the key of each change, without building
// events: watch hubs use it to skip transactions nobody watches.
func (t *Txn) ChangedKeys(fn func(key string)) {
	for _, r := range t.changes {
		fn(recKey(r))
	}
}

// ScanEvents calls fn for every change from revision from on, in revision
// order, until fn returns false. The compaction revision's deletes are
// there too: etcd keeps a tombstone at the compaction revision for the
// watchers that start there. It returns ErrCompacted if from is below the
// compaction revision.
func (s *Store) ScanEvents(from Revision, fn func(ev *mvccpb.Event) bool) error {
	if from < s.compactRev {
		return ErrCompacted
	}
	slabs := s.hot.slabs
	start := sort.Search(len(slabs), func(i int) bool { return slabs[i].first > from }) - 1
	start = max(start, 0)
	for i := start; i < len(slabs); i++ {
		stop := false
		slabRecords(slabs[i].buf, 0, func(r record, _ int) bool {
			if recMod(r) < from {
				return true
			}
			if !fn(event(r)) {
				stop = true
				return false
			}
			return true
		})
		if stop {
			break
		}
	}
	return nil
}

// PrevKV is the key's value just before revision rev, as a watcher with
// prev_kv sees it; nil if the key did not exist or that revision is
// compacted.
func (s *Store) PrevKV(key []byte, rev Revision) *mvccpb.KeyValue {
	before := rev - 1
	if planted.Enabled && s.Bug == planted.MVCCPrevKVOffByOne {
		before = rev // planted: the event's own revision
	}
	rr, err := s.Range(key, nil, RangeOptions{Rev: before})
	if err != nil || len(rr.KVs) == 0 {
		return nil
	}
	return rr.KVs[0]
}
