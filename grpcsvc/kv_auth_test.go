package grpcsvc

import (
	"context"
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/auth"
)

// authOnMeanwhile is a member on which auth was off when a read arrived
// and on once its read index was applied: its loop refuses the user.
type authOnMeanwhile struct {
	Backend
	ranges int
}

func (b *authOnMeanwhile) AuthEnabled() bool { return false }
func (b *authOnMeanwhile) MaxTxnOps() int    { return 128 }

func (b *authOnMeanwhile) Do(_ context.Context, r core.Request) (core.Response, error) {
	if r.ReadIndex {
		return core.Response{AuthEnabled: true}, nil
	}
	b.ranges++
	return core.Response{Err: auth.ErrPermissionDenied}, nil
}

// TestRangeAuthEnabledWhileWaiting: a linearizable read that found auth
// off when it arrived, but on once its read index was applied, is checked
// against the user's permissions, as etcd checks them only then.
func TestRangeAuthEnabledWhileWaiting(t *testing.T) {
	b := &authOnMeanwhile{}
	_, err := (&kvServer{b: b}).Range(context.Background(), &pb.RangeRequest{Key: []byte("k")})
	if !errors.Is(err, rpctypes.ErrGRPCPermissionDenied) || b.ranges != 1 {
		t.Fatalf("Range: %v after %d checked ranges, want %v after 1", err, b.ranges, rpctypes.ErrGRPCPermissionDenied)
	}
}
