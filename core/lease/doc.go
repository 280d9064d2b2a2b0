// Package lease is the lessor: the leases of a member, the keys attached
// to each, and their expiry on logical time (ticks), with etcd 3.7's
// semantics: a minimum TTL, a maximum TTL, expiry only on the leader,
// remaining TTLs extended by a new leader, checkpoints of remaining TTLs
// so that a leader change does not renew long leases to full, and
// rate-limited expiry so that a storm of expiries does not stall writes.
//
// The lease table (ids, TTLs, checkpointed remaining TTLs, attached keys)
// is replicated state: apply changes it in the same way on every member.
// Expiry times are not: only the leader (the primary) keeps them, as etcd
// does; followers hold every lease "forever" until they are promoted.
//
// Only the owner (core's loop) calls the lessor.
package lease
