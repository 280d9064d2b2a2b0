// Package driver is the one event loop around a core.Node. It takes the
// node's Ready and carries it out: log writes to the disk (grouped into
// one fsync per turn of the log writer), messages to the transport,
// responses to the requests' callbacks, watch responses to their sinks,
// checkpoints and compaction hashes off the loop. A snapshot a leader
// streams is written to disk as it arrives (SnapshotReceiver), resumed
// from what arrived if an earlier transfer broke off (SnapshotPartials),
// and decoded off the loop before the node switches to it. Every runtime runs it: the
// server (Loop, with goroutines and the wall clock), the simulator (its
// own Env, in virtual time on a simulated disk) and core's tests
// (Manual). Frontend is the request path behind etcd's services
// (grpcsvc.Backend) for every runtime; handlers reach the loop through a
// Runtime (Post, and a Signal to wait on).
//
// What differs between runtimes is injected: where off-loop work runs and
// when it completes (Env), how messages travel (Transport), the disk's
// file system (disk.Open over a wal.FS) and the tick source. What the
// driver decides is the same everywhere: which writes share an fsync,
// what waits for what, when a request is answered.
//
// Invariants: every Driver method runs on the loop (one goroutine, or the
// simulator's one thread); the node is touched only from there. A log
// write is reported durable to the node only after the Flush that covers
// it returned; writes reach the disk in the order the node produced them.
// Work handed to Env.Background never touches the node: it gets immutable
// inputs and its result comes back through Job.Done, on the loop.
package driver
