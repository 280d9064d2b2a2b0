// Package core is one detcd member as a pure, single-threaded,
// deterministic state machine: a raft RawNode, the proposals and reads it
// is waiting on, the apply loop and the state it builds (the mvcc key
// space, membership, alarms, leases, the auth store), request validation,
// permission checks and responses.
//
// A Node changes only when its driver calls it, from one goroutine. Inputs
// are ticks, peer messages, client requests (each with a driver-chosen
// RequestID), notices that writes or checkpoints are durable, and a restart
// from what the disk holds. Every output is collected into a Ready: writes
// to persist (and whether they need an fsync), messages to send, client
// responses, checkpoints to write. The ordering rules live here, not in the
// drivers: raft runs with AsyncStorageWrites, so messages that depend on a
// write are held back until the driver reports the write durable, entries
// are applied only once committed and locally durable, and a client hears
// about its write only after it is applied. A driver only carries out I/O.
//
// Invariants:
//   - No goroutines, channels, locks, wall clock, os, net or global
//     randomness; no map iteration whose order reaches an output.
//     TestPurity checks the source.
//   - Apply is deterministic: the same committed log gives the same key
//     space, revisions, membership and alarms on every member.
//   - A response to a write is released only after its entry is applied.
//   - Core returns its own sentinel errors (errors.go, auth/errors.go);
//     grpcsvc maps them to etcd's rpctypes errors.
//   - With auth on, a client's request is checked when it arrives and,
//     if it goes through raft, again when it is applied, against the
//     store of that moment: its header carries the user and the auth
//     revision its token was issued at. Internal proposals carry neither
//     and act as root. A request a follower forwards to the leader outside
//     raft carries its caller and is checked there again as that caller,
//     never as root. Core never hashes a password (drivers do).
package core
