package mvcc

import "github.com/google/btree"

// btreeDegree balances node copies after a Clone (smaller is cheaper)
// against tree depth (larger is shallower).
const btreeDegree = 32

// item is the index entry of one key: its newest record and where the
// older ones are. Items are values in the btree and are replaced, never
// changed. The older revisions are reached through the hot log's links
// (links.go) from ord down to the first record at or below low, below
// which the key's history is cold: its one record at or below the
// compaction point, if compaction kept one.
type item struct {
	rec record // newest revision of the key, possibly a tombstone
	// cold is the key's record in the cold slabs, "" if none; rec itself
	// when it is the only one.
	cold record
	// ord is rec's ordinal in the hot log, noOrd if rec is cold.
	ord uint64
	// low is the compaction target the key was last compacted to.
	low Revision
	// pfx is the key's first 8 bytes (keyPrefix): most comparisons in a
	// tree search end on it, without reading the record, which lies in a
	// slab and is a cache miss away on a large store.
	pfx uint64
}

// probeOrd marks an item that only carries a key to search for: its rec
// field is the bare key, not a record.
const probeOrd = noOrd - 1

func probe(key string) item { return item{rec: key, ord: probeOrd, pfx: keyPrefix(key)} }

// keyPrefix is k's first 8 bytes, big-endian, padded with zero bytes: if
// keyPrefix(a) < keyPrefix(b) then a < b (a padding byte stands where the
// shorter key ended, and sorts below any byte but 0, where the prefixes
// tie), so only equal prefixes need the keys themselves.
func keyPrefix(k string) uint64 {
	if len(k) >= 8 {
		return uint64(k[0])<<56 | uint64(k[1])<<48 | uint64(k[2])<<40 | uint64(k[3])<<32 |
			uint64(k[4])<<24 | uint64(k[5])<<16 | uint64(k[6])<<8 | uint64(k[7])
	}
	var p uint64
	for i := 0; i < 8; i++ {
		p <<= 8
		if i < len(k) {
			p |= uint64(k[i])
		}
	}
	return p
}

func (it item) key() string {
	if it.ord == probeOrd {
		return it.rec
	}
	return recKey(it.rec)
}

func itemLess(a, b item) bool {
	if a.pfx != b.pfx {
		return a.pfx < b.pfx
	}
	return a.key() < b.key()
}

func newTree() *btree.BTreeG[item] {
	return btree.NewG[item](btreeDegree, itemLess)
}

// live reports whether the key exists now.
func (it item) live() bool { return !recTombstone(it.rec) }

// pushed returns the item with r, of hot ordinal o, as its newest record.
func (it item) pushed(r record, o uint64) item {
	return item{rec: r, ord: o, cold: it.cold, low: it.low, pfx: keyPrefix(recKey(r))}
}

// coldItem is the item of a key whose only record is the cold record r,
// kept by a compaction at low.
func coldItem(r record, low Revision) item {
	return item{rec: r, cold: r, ord: noOrd, low: low, pfx: keyPrefix(recKey(r))}
}
