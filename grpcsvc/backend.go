package grpcsvc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
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
	// AuthEnabled reports whether auth is on: reads then go through the
	// loop, which checks permissions, instead of views.
	AuthEnabled() bool
	// BcryptCost is --bcrypt-cost, for hashing new passwords.
	BcryptCost() int
	// SignToken issues a token for a user who authenticated at auth
	// revision rev, when the member signs its tokens (JWT); "" when core
	// hands out simple tokens.
	SignToken(user string, rev uint64) (string, error)
	// SnapshotDir is where Snapshot writes the file it streams: in the
	// data directory, on the disk that has room for the state.
	SnapshotDir() string
}
