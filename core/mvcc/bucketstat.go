package mvcc

import (
	"cmp"
	"fmt"
	"hash"
	"hash/crc32"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// BucketStat reads etcd's key bucket for what the store a restore of it
// would hold reports (its revisions, live keys and HashKV), without
// building that store: `snapshot status` of a backup of any size. It
// holds each key and two revisions of it, not values, and reads the
// bucket in passes, as BucketWriter does:
//
//  1. Note, for every entry of the bucket, in key (that is, revision)
//     order: of each key, where its newest record at or below the
//     compaction point is, and its newest record;
//  2. HashCold hashes the records at or below the compaction point that
//     HashKV counts, fetched by their revision;
//  3. HashHot, for every entry from HotStart on, hashes those above it;
//  4. Status.
//
// The result is, by construction and by test, what a store loaded from
// the bucket answers: the same selection as View.hashAt at the store's
// revision, over the same encoding.
type BucketStat struct {
	compactRev Revision
	bucketPass
	keys    map[string]*statKey
	hashing bool
	h       hash.Hash32
	enc     bucketEncoder
	kv      mvccpb.KeyValue
}

// statKey is what BucketStat keeps of a key: where its newest record at
// or below the compaction point is (empty: none), and its newest record's
// revision.
type statKey struct {
	cold       string
	coldTomb   bool
	coldMod    Revision
	newestMod  Revision
	newestTomb bool
}

// BucketStatus is what BucketStat reports.
type BucketStatus struct {
	Rev, CompactRev Revision
	Keys            int
	Hash            uint32
}

// NewBucketStat reads a key bucket compacted at compactRev (-1: never)
// whose newest revision is lastMod (0: empty), as NewBucketWriter.
func NewBucketStat(compactRev, lastMod Revision) *BucketStat {
	return &BucketStat{compactRev: compactRev, bucketPass: bucketPass{lastMod: lastMod}, keys: map[string]*statKey{}}
}

// Note reads one entry of the first pass, which takes the whole bucket.
func (bs *BucketStat) Note(key, value []byte) error {
	if bs.hashing {
		return fmt.Errorf("mvcc: Note after HashCold")
	}
	h, k, _, err := bs.decode(key, value)
	if err != nil {
		return err
	}
	sk := bs.keys[string(k)]
	if sk == nil {
		sk = &statKey{}
		bs.keys[string(k)] = sk
	}
	if h.mod <= bs.compactRev {
		sk.cold, sk.coldTomb, sk.coldMod = string(key), h.tombstone, h.mod
	}
	sk.newestMod, sk.newestTomb = h.mod, h.tombstone
	return nil
}

// rev is the revision of the store a restore makes, as WriteCold's head.
func (bs *BucketStat) rev() Revision { return max(1, bs.lastMod, bs.compactRev) }

// HashCold checks the first pass, then hashes etcd's bucket name and the
// records at or below the compaction point that HashKV at the store's
// revision counts: each key's newest there, unless a tombstone, and, if
// any key is live at that revision, only while it is still the key's
// newest. get returns the value the bucket holds at a bucket key.
func (bs *BucketStat) HashCold(get func(bucketKey []byte) []byte) error {
	if bs.hashing {
		return fmt.Errorf("mvcc: HashCold twice")
	}
	if err := bs.checkEnd(); err != nil {
		return err
	}
	bs.hashing = true
	anyLive := false
	for _, sk := range bs.keys { //core:maporder-ok: a flag
		anyLive = anyLive || !sk.newestTomb
	}
	var cold []string
	for _, sk := range bs.keys { //core:maporder-ok: sorted below
		if sk.cold != "" && !sk.coldTomb && (!anyLive || !sk.newestTomb && sk.newestMod == sk.coldMod) {
			cold = append(cold, sk.cold)
		}
	}
	// Bucket keys sort as their revisions do.
	slices.SortFunc(cold, cmp.Compare[string])
	bs.h = crc32.New(castagnoli)
	bs.h.Write([]byte("key"))
	for _, bk := range cold {
		h, k, v, err := decodeBucketEntry([]byte(bk), get([]byte(bk)), false, 0, 0)
		if err != nil {
			return err
		}
		if sk := bs.keys[string(k)]; sk == nil || sk.cold != bk {
			return fmt.Errorf("%w: revision %d.%d changed between reads", ErrBadBucket, h.mod, h.sub)
		}
		bs.hash(&h, k, v)
	}
	bs.seen = 0 // the second pass checks its own order
	return nil
}

func (bs *BucketStat) hash(h *recHeader, k, v []byte) {
	kb, vb := bucketEntryOf(bs.enc.kb, bs.enc.vb, &bs.kv, h, k, v)
	bs.enc.kb, bs.enc.vb = kb, vb
	bs.h.Write(kb)
	bs.h.Write(vb)
}

// HotStart is the bucket key the second pass starts at.
func (bs *BucketStat) HotStart() []byte { return hotStart(bs.compactRev) }

// HashHot reads one entry of the second pass, from HotStart on, and
// hashes it if it is above the compaction point.
func (bs *BucketStat) HashHot(key, value []byte) error {
	if !bs.hashing {
		return fmt.Errorf("mvcc: HashHot before HashCold")
	}
	h, k, v, err := bs.decode(key, value)
	if err != nil {
		return err
	}
	if h.mod > bs.compactRev {
		bs.hash(&h, k, v)
	}
	return nil
}

// Status is the store's revisions, its keys live at its revision and its
// HashKV there.
func (bs *BucketStat) Status() (BucketStatus, error) {
	if !bs.hashing {
		return BucketStatus{}, fmt.Errorf("mvcc: Status before HashCold")
	}
	live := 0
	for _, sk := range bs.keys { //core:maporder-ok: a count
		if !sk.newestTomb {
			live++
		}
	}
	return BucketStatus{Rev: bs.rev(), CompactRev: bs.compactRev, Keys: live, Hash: bs.h.Sum32()}, nil
}
