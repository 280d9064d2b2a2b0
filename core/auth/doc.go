// Package auth is etcd's authentication state: users with bcrypt password
// hashes and roles, roles with key permissions, whether auth is enabled,
// and the auth revision that every change bumps (Store); and the simple
// tokens a member hands out (Tokens).
//
// Store is replicated: core applies the same requests in the same order on
// every member, so it must be deterministic, and it is part of every
// checkpoint. It never hashes a password: the driver does, off the loop,
// and hands core the hash. Tokens are a member's own memory, as etcd's
// simple tokens are, and expire on the member's logical clock.
//
// Like the rest of core, the package is pure: no goroutines, clocks,
// randomness or I/O; lists come out sorted, never in map order.
package auth
