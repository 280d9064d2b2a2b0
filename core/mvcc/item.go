package mvcc

import "github.com/google/btree"

// btreeDegree balances node copies after a Clone (smaller is cheaper)
// against tree depth (larger is shallower).
const btreeDegree = 32

// item is the index entry of one key: its newest record and the older
// ones. Items are values in the btree and are replaced, never changed.
type item struct {
	rec  record // newest revision of the key, possibly a tombstone
	prev *node  // older revisions, newest first
}

// node is one older revision in a key's chain. Nodes are shared between
// the store and its views, so they are never changed once linked.
type node struct {
	rec  record
	next *node
}

// probeMark marks an item that only carries a key to search for: its rec
// field is the bare key, not a record.
var probeMark = &node{}

func probe(key string) item { return item{rec: key, prev: probeMark} }

func (it item) key() string {
	if it.prev == probeMark {
		return it.rec
	}
	return recKey(it.rec)
}

func itemLess(a, b item) bool { return a.key() < b.key() }

func newTree() *btree.BTreeG[item] {
	return btree.NewG[item](btreeDegree, itemLess)
}

// at returns the key's record at revision rev: the newest with a main
// revision at or below rev. ok is false if there is none or it is a
// tombstone, that is, if the key did not exist at rev.
func (it item) at(rev Revision) (r record, ok bool) {
	if recMod(it.rec) <= rev {
		return it.rec, !recTombstone(it.rec)
	}
	for n := it.prev; n != nil; n = n.next {
		if recMod(n.rec) <= rev {
			return n.rec, !recTombstone(n.rec)
		}
	}
	return "", false
}

// kept returns the record a compaction at rev keeps of the key: its newest
// at or below rev, unless that is a tombstone older than rev. ok is false
// if it keeps none.
func (it item) kept(rev Revision) (r record, ok bool) {
	r, live := it.at(rev)
	return r, live || r != "" && recMod(r) == rev
}

// live reports whether the key exists now.
func (it item) live() bool { return !recTombstone(it.rec) }

// pushed returns the item with r as its newest record.
func (it item) pushed(r record) item {
	return item{rec: r, prev: &node{rec: it.rec, next: it.prev}}
}

// records returns the chain newest first, for rebuilding it.
func (it item) records() []record {
	out := []record{it.rec}
	for n := it.prev; n != nil; n = n.next {
		out = append(out, n.rec)
	}
	return out
}

// itemOf builds an item from records ordered newest first.
func itemOf(recs []record) item {
	var prev *node
	for i := len(recs) - 1; i >= 1; i-- {
		prev = &node{rec: recs[i], next: prev}
	}
	return item{rec: recs[0], prev: prev}
}
