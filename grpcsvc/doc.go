// Package grpcsvc is etcd's v3 gRPC API over a detcd member: it decodes
// requests, hands them to the member's driver through Backend, and
// encodes responses. It holds no state of its own. It is the only place
// that maps core's errors to etcd's rpctypes errors, so clients see the
// codes and messages etcd gives.
package grpcsvc
