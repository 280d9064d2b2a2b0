// Package grpcsvc is etcd's v3 gRPC API over a detcd member: it decodes
// requests, hands them to the member's driver through Backend, and
// encodes responses. It holds no state of its own. It is the only place
// that maps core's errors to etcd's rpctypes errors, so clients see the
// codes and messages etcd gives.
//
// The stream handlers (Watch, LeaseKeepAlive) are plumbing around
// sessions (WatchSession, KeepAliveSession) whose steps make every
// decision. Their receive side runs apart through Backend.Go and their
// waits are Backend.NewSignal's, never channels: the server runs them on
// goroutines, the simulator as tasks, calling the handlers themselves on
// in-process streams, through the guard's checks (Guard.Stream).
//
// Lock and Election (lock.go) are the exception, as in etcd: they are
// clientv3's concurrency package on a client whose calls go straight to
// this package's KV, Lease and Watch services with the caller's context
// (inproc.go), and they answer with that client's errors.
package grpcsvc
