// Package mvcc owns detcd's revisioned key space: every key's history of
// puts and tombstones, the store revision, compaction, copy-on-write read
// views, and the checkpoint encoding of all of it.
//
// Layout. Keys and values never live in one heap object per revision. Each
// revision is an immutable record (key, flags, revisions, lease, value)
// appended to a slab: a large pointer-free byte slice. Slabs come in two
// series. The hot log holds every revision after the compaction point, in
// revision order, so that watchers and checkpoints can scan events by
// revision. The cold slabs hold, for each key, the one revision at or below
// the compaction point that compaction keeps, relocated out of the hot log
// so that whole hot slabs can be dropped. The index is a google/btree of
// small items, one per key, holding the newest record of the key, its cold
// record and its place in the hot log; each hot record links to the key's
// revision before it through pointer-free tables (links.go), so older
// revisions cost the garbage collector nothing to mark.
//
// Invariants:
//   - Records are immutable once written; slabs are only appended to, and a
//     slab's backing array is never reallocated, so record strings that
//     alias it stay valid for as long as anyone holds them.
//   - Items and links are immutable once written: a change replaces the
//     item. This is what makes btree.Clone a valid snapshot for
//     readers on other goroutines.
//   - A key's chain is ordered by strictly decreasing revision, and every
//     revision above the compaction point is present in it.
//   - Only the owner (core's loop) calls Store methods; View methods may be
//     called from any goroutine.
//
// The semantics are etcd 3.7's: revisions start at 1, a write bumps the
// main revision once per transaction, versions restart at 1 after a delete,
// reads at a compacted revision fail with ErrCompacted and reads ahead of
// the store with ErrFutureRev.
package mvcc
