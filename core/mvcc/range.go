package mvcc

import (
	"github.com/google/btree"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core/internal/planted"
)

// RangeOptions are the parts of a range request the key space serves.
type RangeOptions struct {
	// Rev is the revision to read at; 0 or less means the current one.
	Rev Revision
	// Limit caps the number of key-values returned; 0 means no cap.
	Limit int64
	// CountOnly returns the count and no key-values.
	CountOnly bool
	// KeysOnly leaves out values and, as etcd's fast keys-only path does,
	// leases.
	KeysOnly bool
	// WithTotalCount keeps counting past Limit.
	WithTotalCount bool
}

// RangeResult is what a range found.
type RangeResult struct {
	KVs []*mvccpb.KeyValue
	// Count is the number of keys in the range, past Limit only with
	// WithTotalCount.
	Count int
	// Rev is the store's current revision (not the one read at), as etcd
	// reports it.
	Rev Revision
}

// reader reads one tree at one revision. The store's reader uses the live
// tree from the loop; a view's uses its frozen clone from any goroutine.
type reader struct {
	tree *btree.BTreeG[item]
	// hx finds the older revisions the tree's items link to.
	hx         hotIndex
	rev        Revision
	compactRev Revision
	// bug is the store's planted bug.
	bug string
}

// rangeKeys serves a range over [key, end). A nil end means the single
// key; an empty, non-nil end means every key from key on.
func (rd reader) rangeKeys(key, end []byte, ro RangeOptions) (*RangeResult, error) {
	rev := ro.Rev
	if rev > rd.rev {
		return &RangeResult{Count: -1, Rev: rd.rev}, ErrFutureRev
	}
	if rev <= 0 {
		rev = rd.rev
	}
	if rev < rd.compactRev {
		return &RangeResult{Count: -1}, ErrCompacted
	}
	res := &RangeResult{Rev: rd.rev}
	limit := int(ro.Limit)
	if planted.Enabled && rd.bug == planted.MVCCRangeLimitOffByOne && limit > 0 {
		limit-- // planted: one key fewer than asked for
	}
	visit(rd.tree, key, end, func(it item) bool {
		reached := limit > 0 && len(res.KVs) >= limit
		if reached && !ro.WithTotalCount && !ro.CountOnly {
			return false
		}
		r, ok := rd.hx.at(it, rev)
		if planted.Enabled && rd.bug == planted.MVCCTombstoneVisible && r != "" {
			ok = true // planted: a tombstone read as the key
		}
		if !ok {
			return true
		}
		res.Count++
		if !reached && !ro.CountOnly {
			res.KVs = append(res.KVs, keyValue(r, ro.KeysOnly))
		}
		return true
	})
	return res, nil
}

// keyValue decodes a record into the wire type. Key and value alias slab
// memory, which is immutable.
func keyValue(r record, keysOnly bool) *mvccpb.KeyValue {
	h, k, v := decodeRecord(r)
	kv := &mvccpb.KeyValue{
		Key:            bytesOf(k),
		CreateRevision: int64(h.create),
		ModRevision:    int64(h.mod),
		Version:        h.version,
	}
	if !keysOnly {
		kv.Value = bytesOf(v)
		kv.Lease = int64(h.lease)
	}
	return kv
}

// visit calls fn for the items in [key, end) in key order until fn returns
// false.
func visit(t *btree.BTreeG[item], key, end []byte, fn func(item) bool) {
	if end == nil {
		if it, ok := t.Get(probe(stringOf(key))); ok {
			fn(it)
		}
		return
	}
	if len(end) == 0 {
		t.AscendGreaterOrEqual(probe(stringOf(key)), fn)
		return
	}
	t.AscendRange(probe(stringOf(key)), probe(stringOf(end)), fn)
}
