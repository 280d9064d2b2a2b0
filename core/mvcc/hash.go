package mvcc

import (
	"hash/crc32"
	"slices"

	"github.com/detcd/detcd/core/internal/planted"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// KVHash is the answer to HashKV.
type KVHash struct {
	Hash       uint32
	CompactRev Revision
	Rev        Revision
	// Alt is the hash of the other flavor at the same revisions: etcd's
	// HashKV and the hash it keeps when it compacts at Rev differ when the
	// only changes at Rev are deletions (see hashAt), so a member that
	// compacted at Rev and one that did not answer differently for the
	// same data. A peer's hash equal to Alt agrees. Alt equals Hash when
	// the flavors agree; it never goes on the wire.
	Alt uint32
}

// Agrees reports whether a peer's hash at the same revision and
// compaction revision is one this data gives, of either flavor.
func (h KVHash) Agrees(peer uint32) bool { return peer == h.Hash || peer == h.Alt }

// HashKV hashes the key space at revision rev (0: the view's revision) the
// way etcd 3.7 does, so that a detcd member and an etcd member holding the
// same history report the same hash: CRC32C over etcd's bucket name, then,
// in revision order, each revision's etcd backend key and its encoded
// KeyValue, for every revision above the compaction point and for the
// revisions at or below it that compaction keeps and that are still the
// key's newest at rev. The view must come from Snapshot.
func (v *View) HashKV(rev Revision) (KVHash, error) {
	if rev > 0 && rev < v.compactRev {
		return KVHash{}, ErrCompacted
	}
	if rev > v.rev {
		return KVHash{}, ErrFutureRev
	}
	if rev == 0 {
		rev = v.rev
	}
	// A negative revision hashes nothing, as in etcd.
	return v.hashAt(rev, false), nil
}

// CompactionHash is the hash etcd keeps when it compacts at rev: taken on
// the view before the compaction, at exactly rev (0 included).
func (v *View) CompactionHash(rev Revision) KVHash { return v.hashAt(rev, true) }

func (v *View) hashAt(rev Revision, compaction bool) KVHash {
	c := v.compactRev
	// Below the compaction point etcd keeps each key's newest revision
	// unless it is a tombstone, and hashes it only while it is still the
	// key's newest at rev, except that when nothing is kept at rev it
	// hashes every kept revision. A compaction keeps the tombstones at
	// its own revision too, so for its hash they count as kept: the two
	// flavors differ when the only revisions at rev are tombstones.
	var kept, current []record
	anyLive, tombAtRev := false, false
	v.tree.Ascend(func(it item) bool {
		r, live := v.hx.at(it, rev)
		anyLive = anyLive || live
		tombAtRev = tombAtRev || !live && r != "" && recMod(r) == rev
		if s, ok := v.hx.at(it, c); ok {
			kept = append(kept, s)
			if live && recMod(r) == recMod(s) {
				current = append(current, s)
			}
		}
		return true
	})
	one := func(records []record) KVHash {
		slices.SortFunc(records, compareRev)
		sum := v.hashRecords(records, rev)
		return KVHash{Hash: sum, CompactRev: c, Rev: rev, Alt: sum}
	}
	switch {
	case anyLive:
		return one(current)
	case !tombAtRev:
		return one(kept)
	}
	// current is empty here: the compaction's flavor hashes no kept record.
	slices.SortFunc(kept, compareRev)
	h, alt := v.hashRecords(kept, rev), v.hashRecords(nil, rev)
	if compaction {
		h, alt = alt, h
	}
	return KVHash{Hash: h, CompactRev: c, Rev: rev, Alt: alt}
}

// hashRecords is etcd's CRC32C over its bucket name, then the kept records
// at or below rev, then every record above the compaction point up to rev,
// each as its backend key and encoded KeyValue.
func (v *View) hashRecords(kept []record, rev Revision) uint32 {
	h := crc32.New(castagnoli)
	h.Write([]byte("key"))
	var enc bucketEncoder
	skip := planted.Enabled && v.bug == planted.MVCCHashSkipsAfterDefrag && v.defragged
	write := func(r record) {
		if skip {
			skip = false
			return
		}
		k, v := enc.entry(r)
		h.Write(k)
		h.Write(v)
	}
	for _, r := range kept {
		if recMod(r) <= rev {
			write(r)
		}
	}
	v.scanHot(max(v.compactRev, 0), func(r record) bool {
		if recMod(r) > rev {
			return false
		}
		write(r)
		return true
	})
	return h.Sum32()
}
