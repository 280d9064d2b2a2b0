package sim

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/detcd/detcd/core"
)

// TestTooManyRequestsIsLegal: etcd's back-pressure answer means the write
// did not happen. The client records it as failed without a checker
// failure, and backs off, more after each refusal in a row, until a
// request succeeds.
func TestTooManyRequestsIsLegal(t *testing.T) {
	w, err := New(short(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(w, 0)
	var backoffs []int64
	for range 3 {
		op := &Op{Kind: opPut, Req: core.Request{Put: &pb.PutRequest{Key: []byte("g00/k0"), Value: []byte("v")}}}
		c.record(op, &core.Response{Err: rpctypes.ErrGRPCRequestTooManyRequests})
		if !op.Failed || op.Unknown {
			t.Fatalf("refused put recorded as failed=%v unknown=%v, want failed", op.Failed, op.Unknown)
		}
		backoffs = append(backoffs, c.backoffUs)
	}
	if len(w.checks.failures) != 0 {
		t.Fatalf("back-pressure counted as a failure: %v", w.checks.failures)
	}
	if backoffs[0] != backoffMinUs || backoffs[1] != 2*backoffMinUs || backoffs[2] != 4*backoffMinUs {
		t.Fatalf("back-off after 1, 2, 3 refusals = %v, want doubling from %d", backoffs, backoffMinUs)
	}
}
