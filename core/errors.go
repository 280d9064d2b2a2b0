package core

import (
	"errors"

	"github.com/detcd/detcd/core/mvcc"
)

// Sentinel errors of core. grpcsvc maps each to the error etcd returns.
var (
	ErrEmptyKey          = errors.New("core: key is not provided")
	ErrValueProvided     = errors.New("core: value is provided")
	ErrLeaseProvided     = errors.New("core: lease is provided")
	ErrInvalidSortOption = errors.New("core: invalid sort option")
	ErrTooManyOps        = errors.New("core: too many operations in txn request")
	ErrDuplicateKey      = errors.New("core: duplicate key given in txn request")
	ErrKeyNotFound       = errors.New("core: key not found")
	ErrRequestTooLarge   = errors.New("core: request is too large")
	ErrNoSpace           = errors.New("core: database space exceeded")
	ErrLeaseNotFound     = errors.New("core: requested lease not found")
	ErrLeaseExist        = errors.New("core: lease already exists")
	ErrLeaseTTLTooLarge  = errors.New("core: too large lease TTL")
	ErrNotLeader         = errors.New("core: not leader")
	ErrLeaderChanged     = errors.New("core: leader changed")
	ErrTimeout           = errors.New("core: request timed out")
	ErrNoLeader          = errors.New("core: no leader")
	ErrStopped           = errors.New("core: member is stopped")
	ErrUnknownRequest    = errors.New("core: unknown request")
	ErrCorrupt           = errors.New("core: corrupt state")
	// ErrCompacted and ErrFutureRev are the key space's own.
	ErrCompacted = mvcc.ErrCompacted
	ErrFutureRev = mvcc.ErrFutureRev
)
