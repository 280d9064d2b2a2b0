package core

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// TestHeaderID: the header's ID is read from an encoded request whatever
// comes before and after it, and a request without one has none.
func TestHeaderID(t *testing.T) {
	for _, tc := range []struct {
		name string
		ir   *pb.InternalRaftRequest
		id   uint64
		ok   bool
	}{
		{"put", &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1 << 40, Username: "u", AuthRevision: 3},
			Put: &pb.PutRequest{Key: []byte("k"), Value: make([]byte, 300), Lease: 7}}, 1 << 40, true},
		{"txn", &pb.InternalRaftRequest{Header: &pb.RequestHeader{Username: "u", ID: 5},
			Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a")}}}}}}, 5, true},
		{"internal", &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 9}, ID: 4, LeaseRevoke: &pb.LeaseRevokeRequest{ID: 2}}, 9, true},
		{"no header", &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k")}}, 0, false},
		{"header without id", &pb.InternalRaftRequest{Header: &pb.RequestHeader{Username: "u"}}, 0, false},
	} {
		data, err := proto.Marshal(tc.ir)
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := headerID(data); id != tc.id || ok != tc.ok {
			t.Errorf("%s: headerID = %d, %v; want %d, %v", tc.name, id, ok, tc.id, tc.ok)
		}
		if _, ok := headerID(data[:len(data)-1]); ok && tc.name == "put" {
			// The header is encoded last: cut, it does not decode.
			t.Errorf("%s: headerID of a truncated request found an id", tc.name)
		}
	}
}

// TestOwnNeedsTheSameBytes: a proposal's request is taken as proposed
// only for the bytes it was encoded to, and only for key space writes.
func TestOwnNeedsTheSameBytes(t *testing.T) {
	ir := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 11}, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}}
	data, err := proto.Marshal(ir)
	if err != nil {
		t.Fatal(err)
	}
	ps := proposals{byID: map[uint64]*proposal{11: {id: 11, data: data, ir: ir}}}
	if got := ps.own(append([]byte(nil), data...)); got != ir {
		t.Errorf("own(the proposed bytes) = %v, want the proposed request", got)
	}
	other := proto.Clone(ir).(*pb.InternalRaftRequest)
	other.Put.Value = []byte("w")
	if odata, _ := proto.Marshal(other); ps.own(odata) != nil {
		t.Errorf("own(other bytes with the same id) is not nil")
	}
	grant := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 12}, LeaseGrant: &pb.LeaseGrantRequest{ID: 1, TTL: 5}}
	gdata, _ := proto.Marshal(grant)
	ps.byID[12] = &proposal{id: 12, data: gdata, ir: grant}
	if ps.own(gdata) != nil {
		t.Errorf("own(a lease grant) is not nil: only key space writes are taken as proposed")
	}
}
