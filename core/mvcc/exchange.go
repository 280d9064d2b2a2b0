package mvcc

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core/internal/planted"
)

// etcd's database file keeps the key space in its "key" bucket: one entry
// per revision, keyed by the revision (8 bytes big-endian main, '_', 8
// bytes big-endian sub, and a 't' for a delete), whose value is the
// encoded mvccpb.KeyValue (a delete's holds only the key). The functions
// here translate between that and the records a checkpoint holds.

// bucketKeyBytes is the size of a revision's key in etcd's key bucket; a
// tombstone's has one more byte, 't'.
const bucketKeyBytes = 17

// ErrBadBucket is an entry of etcd's key bucket that does not decode.
var ErrBadBucket = errors.New("mvcc: malformed key bucket entry")

// bucketEntry returns the key bucket key of a record and its encoded
// KeyValue, as etcd stores and hashes them, in kb and vb (reused: their
// contents are overwritten) with kv as scratch.
func bucketEntry(kb, vb []byte, kv *mvccpb.KeyValue, r record) (key, value []byte) {
	hdr, k, v := decodeRecord(r)
	return bucketEntryOf(kb, vb, kv, &hdr, bytesOf(k), bytesOf(v))
}

// bucketEntryOf encodes a record's parts as its key bucket entry.
func bucketEntryOf(kb, vb []byte, kv *mvccpb.KeyValue, hdr *recHeader, k, v []byte) (key, value []byte) {
	kb = binary.BigEndian.AppendUint64(kb[:0], uint64(hdr.mod))
	kb = append(kb, '_')
	kb = binary.BigEndian.AppendUint64(kb, uint64(hdr.sub))
	kv.Reset()
	kv.Key = k
	if hdr.tombstone {
		kb = append(kb, 't')
	} else {
		kv.CreateRevision, kv.ModRevision, kv.Version = int64(hdr.create), int64(hdr.mod), hdr.version
		kv.Value, kv.Lease = v, int64(hdr.lease)
	}
	vb, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(vb[:0], kv)
	if err != nil {
		panic("mvcc: marshal KeyValue: " + err.Error())
	}
	return kb, vb
}

// bucketEncoder encodes records as key bucket entries, reusing its
// buffers from one record to the next.
type bucketEncoder struct {
	kb, vb []byte
	kv     mvccpb.KeyValue
}

func (e *bucketEncoder) entry(r record) (key, value []byte) {
	e.kb, e.vb = bucketEntry(e.kb, e.vb, &e.kv, r)
	return e.kb, e.vb
}

// ExportBucket calls fn, in revision order, with the key bucket entry of
// every record a checkpoint of the view holds: each key's newest record at
// or below the compaction point (a tombstone only at that point, as etcd's
// compaction leaves it) and every record after. key and value are reused
// between calls: fn copies what it keeps. The view must come from
// Snapshot; it runs off the loop.
func (v *View) ExportBucket(fn func(key, value []byte) error) error {
	var cold []record
	v.tree.Ascend(func(it item) bool {
		if r, ok := v.hx.kept(it, v.compactRev); ok && recMod(r) < v.compactRev {
			cold = append(cold, r)
		}
		return true
	})
	slices.SortFunc(cold, compareRev)
	var enc bucketEncoder
	var err error
	emit := func(r record) bool {
		err = fn(enc.entry(r))
		return err == nil
	}
	for _, r := range cold {
		if !emit(r) {
			return err
		}
	}
	v.scanHot(v.compactRev-1, func(r record) bool {
		if planted.Enabled && v.bug == planted.MVCCExportDropsNewest && recMod(r) == v.rev {
			return true
		}
		return recMod(r) <= v.rev && emit(r)
	})
	return err
}

func compareRev(a, b record) int {
	ha, _, _ := decodeRecord(a)
	hb, _, _ := decodeRecord(b)
	return cmp.Or(cmp.Compare(ha.mod, hb.mod), cmp.Compare(ha.sub, hb.sub))
}

// BucketImporter builds a key space from etcd's key bucket, read in key
// (that is, revision) order. Records go into slabs, as the store's do, so
// a store of a million revisions costs a few hundred allocations.
type BucketImporter struct {
	recs    []record
	slab    *slab
	lastMod Revision
	lastSub int64
}

// Add decodes one key bucket entry.
func (im *BucketImporter) Add(key, value []byte) error {
	h, k, v, err := decodeBucketEntry(key, value, len(im.recs) > 0, im.lastMod, im.lastSub)
	if err != nil {
		return err
	}
	im.add(&h, k, v)
	return nil
}

func (im *BucketImporter) add(h *recHeader, k, v []byte) {
	b := im.alloc(recordSize(h, len(k), len(v)))
	encodeRecord(b, h, k, v)
	im.recs = append(im.recs, asRecord(b))
	im.lastMod, im.lastSub = h.mod, h.sub
}

// decodeBucketEntry decodes and checks one key bucket entry; after says
// whether an entry (at revision lastMod.lastSub) came before it.
func decodeBucketEntry(key, value []byte, after bool, lastMod Revision, lastSub int64) (h recHeader, k, v []byte, err error) {
	if len(key) != bucketKeyBytes && (len(key) != bucketKeyBytes+1 || key[bucketKeyBytes] != 't') || key[8] != '_' {
		return h, nil, nil, fmt.Errorf("%w: key %x is not a revision", ErrBadBucket, key)
	}
	h = recHeader{
		tombstone: len(key) > bucketKeyBytes,
		mod:       Revision(binary.BigEndian.Uint64(key[:8])),
		sub:       int64(binary.BigEndian.Uint64(key[9:])),
	}
	if h.mod < 1 || h.sub < 0 || after && cmp.Or(cmp.Compare(h.mod, lastMod), cmp.Compare(h.sub, lastSub)) <= 0 {
		return h, nil, nil, fmt.Errorf("%w: revision %d.%d out of order", ErrBadBucket, h.mod, h.sub)
	}
	kv, err := decodeBucketKV(value)
	if err != nil {
		return h, nil, nil, fmt.Errorf("%w: revision %d.%d: %v", ErrBadBucket, h.mod, h.sub, err)
	}
	if len(kv.key) == 0 {
		return h, nil, nil, fmt.Errorf("%w: revision %d.%d has no key", ErrBadBucket, h.mod, h.sub)
	}
	if !h.tombstone {
		h.create, h.version, h.lease = Revision(kv.create), kv.version, LeaseID(kv.leaseID)
		if kv.mod != int64(h.mod) || h.create < 1 || h.create > h.mod || h.version < 1 || h.lease < 0 {
			return h, nil, nil, fmt.Errorf("%w: revision %d.%d holds key %q create %d mod %d version %d lease %d",
				ErrBadBucket, h.mod, h.sub, kv.key, kv.create, kv.mod, kv.version, kv.leaseID)
		}
	}
	return h, kv.key, kv.value, nil
}

// alloc returns n bytes of the current slab, or of a new one.
func (im *BucketImporter) alloc(n int) []byte {
	if im.slab != nil {
		if b, _, ok := im.slab.put(n); ok {
			return b
		}
	}
	im.slab = newSlab(n)
	b, _, _ := im.slab.put(n)
	return b
}

// AppendCheckpoint appends the key space to b as checkpoint content (see
// Load), with compaction point compactRev (-1: never compacted) and the
// revision etcd starts at with that bucket: the newest of its revisions,
// the compaction point and 1. Records a compaction at compactRev would
// remove (etcd compacts in the background, so its file may still hold
// them) are dropped. b grows once, to the content's size.
func (im *BucketImporter) AppendCheckpoint(b []byte, compactRev Revision) []byte {
	cold, hot := im.sections(compactRev)
	b = slices.Grow(b, checkpointHeadBytes+sectionBytes(cold)+sectionBytes(hot))
	b = appendCheckpointHead(b, max(1, im.lastMod, compactRev), compactRev)
	b = appendSection(b, cold)
	return appendSection(b, hot)
}

// checkpointHeadBytes bounds the size of appendCheckpointHead's output.
const checkpointHeadBytes = 3 * binary.MaxVarintLen64

func appendCheckpointHead(b []byte, rev, compactRev Revision) []byte {
	b = binary.AppendUvarint(b, checkpointFormat)
	b = binary.AppendUvarint(b, uint64(rev))
	return binary.AppendUvarint(b, uint64(compactRev+1))
}

// sections splits the records into a checkpoint's two sections: cold,
// each key's newest record at or below compactRev that a compaction there
// keeps, in key order; hot, every record from compactRev on, in revision
// order.
func (im *BucketImporter) sections(compactRev Revision) (cold, hot []record) {
	newest := map[string]record{}
	for _, r := range im.recs {
		if recMod(r) <= compactRev {
			newest[recKey(r)] = r
		}
	}
	for _, r := range newest { //core:maporder-ok: sorted below
		if !recTombstone(r) || recMod(r) == compactRev {
			cold = append(cold, r)
		}
	}
	slices.SortFunc(cold, func(a, b record) int { return cmp.Compare(recKey(a), recKey(b)) })
	i, _ := slices.BinarySearchFunc(im.recs, compactRev, func(r record, c Revision) int { return cmp.Compare(recMod(r), c) })
	return cold, im.recs[i:]
}

// sectionBytes is the size appendSection gives recs.
func sectionBytes(recs []record) int {
	n := 1
	for _, r := range recs {
		n += uvarintLen(uint64(len(r))) + len(r)
	}
	return n
}

func appendSection(b []byte, recs []record) []byte {
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return append(b, 0)
}
