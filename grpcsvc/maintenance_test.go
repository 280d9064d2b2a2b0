package grpcsvc

import (
	"context"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// movedLeader is a member whose loop moved its leadership.
type movedLeader struct{ Backend }

func (movedLeader) Do(context.Context, core.Request) (core.Response, error) {
	return core.Response{Msg: &pb.MoveLeaderResponse{Header: &pb.ResponseHeader{MemberId: 1, RaftTerm: 2}}}, nil
}

// TestMoveLeaderAnswersEmpty: etcd answers MoveLeader with an empty
// response, no header (its term would be the old leader's).
func TestMoveLeaderAnswersEmpty(t *testing.T) {
	resp, err := (&maintenanceServer{b: movedLeader{}}).MoveLeader(context.Background(), &pb.MoveLeaderRequest{TargetID: 2})
	if err != nil || resp.Header != nil {
		t.Fatalf("MoveLeader: %v, %v; want an empty response", resp, err)
	}
}
