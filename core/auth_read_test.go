package core_test

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/auth"
)

// TestAuthReadCheckedWhenServed: etcd checks a linearizable read's
// permissions once its read index is applied, against the store of that
// moment, so a revoke committed before the read arrived, but not yet
// applied by the member it arrived at, refuses it; a serializable read is
// checked, and served, as it arrives, against the store of then.
func TestAuthReadCheckedWhenServed(t *testing.T) {
	get := &pb.RangeRequest{Key: []byte("/a/1")}
	for _, tt := range []struct {
		name string
		r    core.Request
		want error
	}{
		{"range", core.Request{Range: get}, auth.ErrPermissionDenied},
		{"read-only txn", core.Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: get}}}}}, auth.ErrPermissionDenied},
		{"serializable range", core.Request{Range: &pb.RangeRequest{Key: []byte("/a/1"), Serializable: true}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, tokens := authMember(t)
			// The revoke is written and so committed, not yet applied,
			// when the read arrives; the read's index is past it.
			revoke := m.request(asUser(tokens, "root", core.Request{Auth: &pb.InternalRaftRequest{
				AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "alice", Role: "rw"}}}))
			m.drv.Process()
			m.env.RunPending()
			read := m.request(asUser(tokens, "alice", tt.r))
			for i := 0; i < 200 && len(m.got) < 2; i++ {
				m.settle()
				m.n.Tick()
			}
			if r, ok := m.got[revoke]; !ok || r.Err != nil {
				t.Fatalf("revoke: %+v", r)
			}
			if r, ok := m.got[read]; !ok || !errors.Is(r.Err, tt.want) {
				t.Fatalf("read: %+v (answered %v), want error %v", r.Err, ok, tt.want)
			}
		})
	}
}
