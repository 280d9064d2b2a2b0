package grpcsvc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detcd/detcd/core"
)

// TestErrorMapping pins every core error to the exact error etcd sends:
// same gRPC code, same message.
func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{core.ErrEmptyKey, codes.InvalidArgument, "etcdserver: key is not provided"},
		{core.ErrValueProvided, codes.InvalidArgument, "etcdserver: value is provided"},
		{core.ErrLeaseProvided, codes.InvalidArgument, "etcdserver: lease is provided"},
		{core.ErrInvalidSortOption, codes.InvalidArgument, "etcdserver: invalid sort option"},
		{core.ErrTooManyOps, codes.InvalidArgument, "etcdserver: too many operations in txn request"},
		{core.ErrDuplicateKey, codes.InvalidArgument, "etcdserver: duplicate key given in txn request"},
		{core.ErrKeyNotFound, codes.InvalidArgument, "etcdserver: key not found"},
		{core.ErrRequestTooLarge, codes.InvalidArgument, "etcdserver: request is too large"},
		{core.ErrNoSpace, codes.ResourceExhausted, "etcdserver: mvcc: database space exceeded"},
		{core.ErrLeaseNotFound, codes.NotFound, "etcdserver: requested lease not found"},
		{core.ErrLeaseExist, codes.FailedPrecondition, "etcdserver: lease already exists"},
		{core.ErrLeaseTTLTooLarge, codes.OutOfRange, "etcdserver: too large lease TTL"},
		{core.ErrNotLeader, codes.FailedPrecondition, "etcdserver: not leader"},
		{core.ErrLeaderChanged, codes.Unavailable, "etcdserver: leader changed"},
		{core.ErrTimeout, codes.Unavailable, "etcdserver: request timed out"},
		{core.ErrMemberNotFound, codes.NotFound, "etcdserver: member not found"},
		{core.ErrPeerURLExist, codes.FailedPrecondition, "etcdserver: Peer URLs already exists"},
		// etcd 3.7.3 sends this one as Unknown (TestClusterDiff).
		{core.ErrNotEnoughStarted, codes.Unknown, "etcdserver: re-configuration failed due to not enough started members"},
		{core.ErrTooManyRequests, codes.ResourceExhausted, "etcdserver: too many requests"},
		{core.ErrNoLeader, codes.Unavailable, "etcdserver: no leader"},
		{core.ErrStopped, codes.Unavailable, "etcdserver: server stopped"},
		{core.ErrCompacted, codes.OutOfRange, "etcdserver: mvcc: required revision has been compacted"},
		{core.ErrFutureRev, codes.OutOfRange, "etcdserver: mvcc: required revision is a future revision"},
		{core.ErrCorrupt, codes.DataLoss, "etcdserver: corrupt cluster"},
		{fmt.Errorf("wrapped: %w", core.ErrFutureRev), codes.OutOfRange, "etcdserver: mvcc: required revision is a future revision"},
		{context.Canceled, codes.Canceled, "etcdserver: request canceled"},
		{context.DeadlineExceeded, codes.DeadlineExceeded, "etcdserver: context deadline exceeded"},
		{errors.New("boom"), codes.Unknown, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			st, ok := status.FromError(toGRPC(tt.err))
			if !ok || st.Code() != tt.code || st.Message() != tt.msg {
				t.Fatalf("%v maps to %v %q, want %v %q", tt.err, st.Code(), st.Message(), tt.code, tt.msg)
			}
		})
	}
	for _, e := range errorMap {
		if rpctypes.Error(e.grpc) == nil {
			t.Errorf("%v maps to something rpctypes does not know", e.core)
		}
	}
}
