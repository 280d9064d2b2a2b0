// Package corrupt is etcd's corruption checks, for every runtime: what a
// check round asks, in which order, and what the answers say. Members ask
// each other for HashKV at a revision:
//   - the initial check (Checker.Initial; the server's InitialCorruptCheck
//     gate): a restarting member compares its hash with its peers' before
//     it serves clients, and refuses to start when one differs at the same
//     compaction;
//   - the periodic check (Checker.Periodic; --corrupt-check-time): the
//     leader compares its hash with its followers' and raises CORRUPT for
//     the first member found wrong;
//   - the compaction hash check (Checker.CompactHash; the CompactHashCheck
//     gate, --compact-hash-check-time): the leader compares the hashes
//     members kept at their last compactions and raises CORRUPT for the
//     members outside the majority (for member 0, the whole cluster, if
//     there is no majority).
//
// Once applied, a CORRUPT alarm makes every member refuse writes (core).
//
// The package owns the sequencing of one round and its verdicts
// (verdict.go: functions of the hashes gathered, without I/O). A runtime
// injects the gathering and owns the timers: the server (goroutines, the
// wall clock, peers asked over the peer transport) and the simulator
// (tasks in virtual time, peers asked over its simulated network) run the
// same rounds through Runtime, and answer their peers with LocalHash.
//
// Invariants: a round touches the node only through Runtime.OnLoop; a
// peer that did not answer, is behind the revision asked, or holds
// another compaction revision is never evidence of corruption; hashes
// are compared only at the same revision and compaction revision; what a
// verdict would log comes back as notes, written in the order decided.
package corrupt
