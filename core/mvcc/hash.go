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
}

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
	// its own revision too, so for its hash they count as kept.
	var kept, current []record
	anyLive := false
	v.tree.Ascend(func(it item) bool {
		r, live := v.hx.at(it, rev)
		anyLive = anyLive || live || compaction && r != "" && recMod(r) == rev
		if s, ok := v.hx.at(it, c); ok {
			kept = append(kept, s)
			if live && recMod(r) == recMod(s) {
				current = append(current, s)
			}
		}
		return true
	})
	if anyLive {
		kept = current
	}
	slices.SortFunc(kept, compareRev)
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
	v.scanHot(max(c, 0), func(r record) bool {
		if recMod(r) > rev {
			return false
		}
		write(r)
		return true
	})
	return KVHash{Hash: h.Sum32(), CompactRev: c, Rev: rev}
}
