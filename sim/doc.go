// Package sim is the deterministic simulator: a world of 3 or 5 members
// running the real core.Node, each on its own simulated disk (memfs) with
// its own virtual clock, linked by a simulated network (netsim), driven by
// one event queue in virtual time on one goroutine, with faults
// (partitions, lost and duplicated messages, crashes between a log write
// and its fsync with torn writes of whole sectors, fsync failures, slow
// disks, clock drift and jumps, pauses; and, when named, a deleted WAL
// and rot in synced data, after which the member must refuse to start,
// and garbage in the sector a crash tore, after which it may) and a
// client workload all drawn from one seed.
//
// One seed decides everything: a root PRNG seeds every component's own
// PRNG (the network, the fault schedule, each client, each member's
// election jitter), so the same seed and code replay the same run bit for
// bit. Every event is written to a trace by this package's own formatter;
// the trace's hash is the run's fingerprint.
//
// A run has a safety phase under faults and then a liveness phase: faults
// stop, the network heals, crashed members restart, and every member must
// converge within a bound; in a quarter of the seeds (Options.KeepFaulty)
// a minority of the voters stays crashed or cut off, and the rest must
// converge and serve a write and a linearizable read. Checkers are read-only observers of the world:
// linearizability of the client history (porcupine, with an etcd key-value
// model), durability of acknowledged writes (and no restart with a
// shorter log than the member had synced), convergence of state hashes,
// raft safety (one leader per term, applied entries never differ),
// revisions that never go backwards, the corruption checks' findings
// (members run etcd's corruption checks, package corrupt, when the seed
// draws them on: an alarm without a disk fault that damages data, or a
// divergence they leave unreported, fails the run), a quorum that no
// snapshot transfer costs (checks_quorum.go), and the backups operators
// take through Maintenance.Snapshot, each restored in a drill as `detcd
// snapshot restore` does (checks_snapshot.go, restoredrill.go); in some
// worlds an operator restores the whole running cluster from its newest
// backup, and the checkers hold each epoch to etcd's restore
// (restore.go, checks_epoch.go). Lock clients lock and run for leader
// through the Lock and Election services, and their answers are judged
// against the key space's history (lockclient.go, checks_lock.go). Snapshots take their size
// over the link's bandwidth and the disk's rate, and a quarter of the
// worlds have a large store, modelled in sizes only (snapbw.go).
//
// Raft reads crypto/rand.Reader for its election jitter. The world swaps
// in each member's own seeded reader around every call into that member's
// node, so elections replay too; since that reader is process-global, only
// one world may run in a process at a time.
package sim
