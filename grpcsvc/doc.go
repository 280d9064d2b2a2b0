// Package grpcsvc is etcd's v3 gRPC API over a detcd member: it decodes
// requests, hands them to the member's driver through Backend, and
// encodes responses. It holds no state of its own. It is the only place
// that maps core's errors to etcd's rpctypes errors, so clients see the
// codes and messages etcd gives.
//
// The stream handlers (Watch, LeaseKeepAlive) are plumbing around
// sessions (WatchSession, KeepAliveSession) whose steps make every
// decision. Their receive side runs apart through Backend.Go (a
// keep-alive stream's only where the guard may end its context:
// StreamEndsApart) and their
// waits are Backend.NewSignal's, never channels: the server runs them on
// goroutines, the simulator as tasks, calling the handlers themselves on
// in-process streams, through the guard's checks (Guard.Stream).
//
// Lock and Election (lock.go) make the calls etcd's make through
// clientv3's concurrency package, straight to this package's KV and Lease
// services and the Backend's watch streams, with the caller's context;
// their waits are signals too, and they answer with clientv3's errors.
package grpcsvc
