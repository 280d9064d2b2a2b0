// Package watch is the watch hub: every watch stream of a member, its
// watchers, and the delivery of key-space changes to them with etcd 3.7's
// semantics (start revisions, ranges, filters, prev_kv, progress
// notifications, compaction cancels).
//
// A watcher is synced when it has seen every revision up to the store's:
// new changes go straight to it. A watcher that starts in the past, or
// whose stream has no credit left when a change comes, is unsynced: it
// catches up later from the key space's history, a budget of events at a
// time, and never holds the writer back. Unsynced watchers catch up
// together: one scan of the history serves them all, each taking the
// events it wants. Credit is in bytes: a stream can have at most its credit
// of responses handed out and not yet sent, which bounds the memory of a
// slow consumer; each response takes at least a StreamResponsesMax-th of
// it, which keeps the queue short, so that an overloaded stream's watchers
// fall behind early and catch up in large batches.
//
// Invariants:
//   - A watcher receives each revision in its range at most once, in
//     order, and all events of one revision in one response.
//   - Responses of one stream come out in the order they were made.
//   - Everything is deterministic: watchers are kept in creation order or
//     sorted by it before their responses are made, never iterated from a
//     map.
//
// Only the owner (core's loop) calls the hub.
package watch
