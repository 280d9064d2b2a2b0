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
	// Membership.
	ErrMemberExist           = errors.New("core: member ID already exist")
	ErrMemberNotFound        = errors.New("core: member not found")
	ErrMemberRemoved         = errors.New("core: member was removed")
	ErrPeerURLExist          = errors.New("core: peer URLs already exists")
	ErrMemberBadURLs         = errors.New("core: given member URLs are invalid")
	ErrMemberNotLearner      = errors.New("core: can only promote a learner member")
	ErrLearnerNotReady       = errors.New("core: can only promote a learner member which is in sync with leader")
	ErrTooManyLearners       = errors.New("core: too many learner members in cluster")
	ErrNotEnoughStarted      = errors.New("core: re-configuration failed due to not enough started members")
	ErrUnhealthy             = errors.New("core: unhealthy cluster")
	ErrBadLeaderTransferee   = errors.New("core: bad leader transferee")
	ErrTimeoutLeaderTransfer = errors.New("core: request timed out, leader transfer took too long")
	ErrTooManyRequests       = errors.New("core: too many requests")
	ErrTimeout               = errors.New("core: request timed out")
	ErrTimeoutLeaderFail     = errors.New("core: request timed out, possibly due to previous leader failure")
	ErrNoLeader              = errors.New("core: no leader")
	ErrStopped               = errors.New("core: member is stopped")
	ErrUnknownRequest        = errors.New("core: unknown request")
	ErrCorrupt               = errors.New("core: corrupt state")
	ErrUnknownMethod         = errors.New("core: unknown method")
	// ErrSnapshotRefused: raft did not take a leader's snapshot (it is
	// not ahead of the log); the member's peers never see it.
	ErrSnapshotRefused = errors.New("core: snapshot refused by raft")
	// ErrSnapshotHeadShort: the head of a snapshot's content handed to
	// CheckSnapshot ends inside its header; check the whole content.
	ErrSnapshotHeadShort = errors.New("core: snapshot head shorter than its header")
	// Downgrade jobs.
	ErrWrongDowngradeVersionFormat   = errors.New("core: wrong downgrade target version format")
	ErrInvalidDowngradeTargetVersion = errors.New("core: invalid downgrade target version")
	ErrClusterVersionUnavailable     = errors.New("core: cluster version not found during downgrade")
	ErrDowngradeInProcess            = errors.New("core: cluster has a downgrade job in progress")
	// ErrCompacted and ErrFutureRev are the key space's own.
	ErrCompacted = mvcc.ErrCompacted
	ErrFutureRev = mvcc.ErrFutureRev
)
