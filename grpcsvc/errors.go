package grpcsvc

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/auth"
)

// errorMap pairs each of core's errors with the error etcd returns for it.
var errorMap = []struct {
	core error
	grpc error
}{
	{core.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
	{core.ErrValueProvided, rpctypes.ErrGRPCValueProvided},
	{core.ErrLeaseProvided, rpctypes.ErrGRPCLeaseProvided},
	{core.ErrInvalidSortOption, rpctypes.ErrGRPCInvalidSortOption},
	{core.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps},
	{core.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey},
	{core.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
	{core.ErrRequestTooLarge, rpctypes.ErrGRPCRequestTooLarge},
	{core.ErrNoSpace, rpctypes.ErrGRPCNoSpace},
	{core.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{core.ErrLeaseExist, rpctypes.ErrGRPCLeaseExist},
	{core.ErrLeaseTTLTooLarge, rpctypes.ErrGRPCLeaseTTLTooLarge},
	{core.ErrNotLeader, rpctypes.ErrGRPCNotLeader},
	{core.ErrLeaderChanged, rpctypes.ErrGRPCLeaderChanged},
	{core.ErrMemberExist, rpctypes.ErrGRPCMemberExist},
	{core.ErrMemberNotFound, rpctypes.ErrGRPCMemberNotFound},
	{core.ErrMemberRemoved, rpctypes.ErrGRPCMemberNotFound},
	{core.ErrPeerURLExist, rpctypes.ErrGRPCPeerURLExist},
	{core.ErrMemberBadURLs, rpctypes.ErrGRPCMemberBadURLs},
	{core.ErrMemberNotLearner, rpctypes.ErrGRPCMemberNotLearner},
	{core.ErrLearnerNotReady, rpctypes.ErrGRPCLearnerNotReady},
	{core.ErrTooManyLearners, rpctypes.ErrGRPCTooManyLearners},
	// etcd maps this one to rpctypes' client-side error, which gRPC sends
	// as Unknown with its message.
	{core.ErrNotEnoughStarted, status.Error(codes.Unknown, rpctypes.ErrorDesc(rpctypes.ErrGRPCMemberNotEnoughStarted))},
	{core.ErrUnhealthy, rpctypes.ErrGRPCUnhealthy},
	{core.ErrBadLeaderTransferee, rpctypes.ErrGRPCBadLeaderTransferee},
	// etcd does not map this one: it reaches clients as Unknown.
	{core.ErrTimeoutLeaderTransfer, status.Error(codes.Unknown, "etcdserver: request timed out, leader transfer took too long")},
	{core.ErrTooManyRequests, rpctypes.ErrGRPCRequestTooManyRequests},
	{core.ErrTimeout, rpctypes.ErrGRPCTimeout},
	{core.ErrTimeoutLeaderFail, rpctypes.ErrGRPCTimeoutDueToLeaderFail},
	{core.ErrNoLeader, rpctypes.ErrGRPCNoLeader},
	{core.ErrStopped, rpctypes.ErrGRPCStopped},
	{core.ErrCompacted, rpctypes.ErrGRPCCompacted},
	{core.ErrFutureRev, rpctypes.ErrGRPCFutureRev},
	{core.ErrCorrupt, rpctypes.ErrGRPCCorrupt},
	// etcd does not map this one: it reaches clients as Unknown.
	{core.ErrUnknownMethod, status.Error(codes.Unknown, "etcdserver: unknown method")},
	{core.ErrWrongDowngradeVersionFormat, rpctypes.ErrGRPCWrongDowngradeVersionFormat},
	{core.ErrInvalidDowngradeTargetVersion, rpctypes.ErrGRPCInvalidDowngradeTargetVersion},
	{core.ErrClusterVersionUnavailable, rpctypes.ErrGRPCClusterVersionUnavailable},
	{core.ErrDowngradeInProcess, rpctypes.ErrGRPCDowngradeInProcess},
	{auth.ErrRootUserNotExist, rpctypes.ErrGRPCRootUserNotExist},
	{auth.ErrRootRoleNotExist, rpctypes.ErrGRPCRootRoleNotExist},
	{auth.ErrUserAlreadyExist, rpctypes.ErrGRPCUserAlreadyExist},
	{auth.ErrUserEmpty, rpctypes.ErrGRPCUserEmpty},
	{auth.ErrUserNotFound, rpctypes.ErrGRPCUserNotFound},
	{auth.ErrRoleAlreadyExist, rpctypes.ErrGRPCRoleAlreadyExist},
	{auth.ErrRoleNotFound, rpctypes.ErrGRPCRoleNotFound},
	{auth.ErrRoleEmpty, rpctypes.ErrGRPCRoleEmpty},
	{auth.ErrAuthFailed, rpctypes.ErrGRPCAuthFailed},
	{auth.ErrPermissionNotGiven, rpctypes.ErrGRPCPermissionNotGiven},
	{auth.ErrPermissionDenied, rpctypes.ErrGRPCPermissionDenied},
	{auth.ErrRoleNotGranted, rpctypes.ErrGRPCRoleNotGranted},
	{auth.ErrPermissionNotGranted, rpctypes.ErrGRPCPermissionNotGranted},
	{auth.ErrAuthNotEnabled, rpctypes.ErrGRPCAuthNotEnabled},
	{auth.ErrInvalidAuthToken, rpctypes.ErrGRPCInvalidAuthToken},
	{auth.ErrInvalidAuthMgmt, rpctypes.ErrGRPCInvalidAuthMgmt},
	{auth.ErrAuthOldRevision, rpctypes.ErrGRPCAuthOldRevision},
}

// toGRPC maps an error from core or the driver to what etcd would send.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, e := range errorMap {
		if errors.Is(err, e.core) {
			return e.grpc
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return rpctypes.ErrGRPCCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return rpctypes.ErrGRPCDeadlineExceeded
	}
	return status.Error(codes.Unknown, err.Error())
}
