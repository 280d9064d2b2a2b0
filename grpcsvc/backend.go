package grpcsvc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/auth"
	"github.com/detcd/detcd/core/mvcc"
)

// Backend is what the services need from a member's driver.
type Backend interface {
	// Do sends a request through the member's loop and waits for the
	// response or for ctx to end.
	Do(ctx context.Context, r core.Request) (core.Response, error)
	// SerializableView returns a view that holds every write this member
	// has acknowledged, and the header to answer with.
	SerializableView(ctx context.Context) (*mvcc.View, *pb.ResponseHeader, error)
	// MaxTxnOps is --max-txn-ops.
	MaxTxnOps() int
	// MaxRequestBytes is --max-request-bytes.
	MaxRequestBytes() int
	// Version is the etcd version detcd answers as.
	Version() string
	// OpenWatch starts a watch stream on the member.
	OpenWatch(ctx context.Context) (WatchStream, error)
	// NewMemberID chooses the id of a member being added.
	NewMemberID(peerURLs []string) uint64
	// AuthEnabled reports whether auth is on: reads then check the
	// caller's permissions first.
	AuthEnabled() bool
	// Caller is who sends the request of ctx, as its credentials tell (a
	// JWT, a client certificate, a simple token the loop named once);
	// Known is false when only the loop can decide (auth went off
	// meanwhile), and reads then go through the loop, which checks them.
	Caller(ctx context.Context) (Caller, error)
	// Perms are the member's permissions as published: at least as new as
	// anything the member answered before the call.
	Perms() *auth.Perms
	// BcryptCost is --bcrypt-cost, for hashing new passwords.
	BcryptCost() int
	// SignToken issues a token for a user who authenticated at auth
	// revision rev, when the member signs its tokens (JWT); "" when core
	// hands out simple tokens.
	SignToken(user string, rev uint64) (string, error)
	// SnapshotScratch makes the new, empty scratch file Snapshot writes
	// etcd's database file into before it streams it: its path, and what
	// removes it. The server's is in the data directory, on the disk that
	// has room for the state (TempDirScratch); the simulator's is in
	// memory.
	SnapshotScratch() (path string, remove func(), err error)
	// Go runs fn apart from the handler that calls it, as a stream's
	// receive side runs apart from its send side: on a goroutine of its
	// own in the server, as a task of the world in the simulator.
	Go(fn func())
	// NewSignal returns a one-shot signal for a handler to wait on.
	NewSignal() Signal
}

// Signal is a one-shot wait (the driver's): Fire ends Wait, which also
// ends when ctx does, or with core.ErrStopped when the member stops.
type Signal interface {
	Fire()
	Wait(ctx context.Context) error
}

// Caller is who sends a request: User, whose credentials date from auth
// revision Revision when Dated (a JWT), else from now.
type Caller struct {
	User     string
	Revision uint64
	Dated    bool
	Known    bool
}

// permit checks that c may read [key, end) under perms, as core checks a
// read that reaches it.
func (c Caller) permit(perms *auth.Perms, key, end []byte) error {
	rev := c.Revision
	if !c.Dated {
		rev = perms.Revision()
	}
	return toGRPC(perms.CheckRange(c.User, rev, key, end, false))
}
