package sim

import (
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// TestPermStateAllows: the permission checker's own reading of etcd's
// rules, on a store where r holds read on the group g01 and write on its
// key k0, r2 read and write on [g010, g03), w write from g02/ on, and
// root the root role.
func TestPermStateAllows(t *testing.T) {
	st := &permState{pos: permPos{rev: 5, enabled: true},
		roles: map[string][]string{"reader": {"r"}, "writer": {"w"}, "both": {"r", "w"}, "admin": {"root"}, "none": nil, "wide": {"r", "r2"}},
		perms: map[string][]*authpb.Permission{
			"r":  {{PermType: authpb.READ, Key: []byte("g01/"), RangeEnd: []byte("g010")}, {PermType: authpb.WRITE, Key: []byte("g01/k0")}},
			"w":  {{PermType: authpb.WRITE, Key: []byte("g02/"), RangeEnd: []byte{0}}},
			"r2": {{PermType: authpb.READWRITE, Key: []byte("g010"), RangeEnd: []byte("g03")}},
		}}
	get := func(key, end string) core.Request {
		return core.Request{Range: &pb.RangeRequest{Key: []byte(key), RangeEnd: []byte(end)}}
	}
	put := func(key string, prevKV bool) core.Request {
		return core.Request{Put: &pb.PutRequest{Key: []byte(key), PrevKv: prevKV}}
	}
	del := func(key, end string, prevKV bool) core.Request {
		return core.Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: []byte(end), PrevKv: prevKV}}
	}
	txn := func(cmp string, ops ...*pb.RequestOp) core.Request {
		return core.Request{Txn: &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte(cmp)}}, Failure: ops}}
	}
	nested := func(r core.Request) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: r.Txn}}
	}
	for _, tt := range []struct {
		name, user string
		r          core.Request
		ok         bool
	}{
		{"no user", "", get("g01/k0", ""), false},
		{"unknown user", "ghost", get("g01/k0", ""), false},
		{"root role", "admin", core.Request{Compaction: &pb.CompactionRequest{Revision: 3}}, true},
		{"compaction without root", "both", core.Request{Compaction: &pb.CompactionRequest{Revision: 3}}, false},
		{"no roles", "none", get("g01/k0", ""), false},
		{"read a key", "reader", get("g01/k1", ""), true},
		{"read the group", "reader", get("g01/", "g010"), true},
		{"read past the group", "reader", get("g01/", "g02"), false},
		{"read another group", "reader", get("g00/k0", ""), false},
		{"read with write only", "writer", get("g02/k0", ""), false},
		{"write open-ended", "writer", put("g09/k2", false), true},
		{"write a key", "reader", put("g01/k0", false), true},
		{"put prev_kv needs read", "writer", put("g02/k0", true), false},
		{"put prev_kv with read", "reader", put("g01/k0", true), true},
		{"write another key", "reader", put("g01/k1", false), false},
		{"delete a range", "writer", del("g02/", "g020", false), true},
		{"delete prev_kv needs read", "writer", del("g02/", "g020", true), false},
		{"delete the group's key", "reader", del("g01/k0", "", true), true},
		{"txn compare needs read", "writer", txn("g02/k0"), false},
		{"txn ops need theirs", "both", txn("g01/k0", putOp("g03/k0", "v"), rangeOp(&pb.RangeRequest{Key: []byte("g01/k2")})), true},
		{"txn op refused", "both", txn("g01/k0", putOp("g01/k1", "v")), false},
		{"nested txn refused", "both", txn("g01/k0", nested(txn("g01/k1", deleteOp("g00/k0")))), false},
		{"union of two roles", "wide", get("g01/", "g02/"), true},
		{"union with a gap", "wide", get("g00/", "g02/"), false},
	} {
		why := st.allows(tt.user, tt.r)
		if (why == "") != tt.ok {
			t.Errorf("%s: allows %q, want allowed %v", tt.name, why, tt.ok)
		}
	}
	off := &permState{pos: permPos{rev: 5}}
	if why := off.allows("", put("g00/k0", true)); why != "" {
		t.Errorf("auth off: refused %q", why)
	}
}

// TestPermPosOrder: enabling leaves the revision alone, and comes after.
func TestPermPosOrder(t *testing.T) {
	a, b, c := permPos{rev: 7}, permPos{rev: 7, enabled: true}, permPos{rev: 8}
	if !a.less(b) || !b.less(c) || b.less(a) || a.less(a) {
		t.Errorf("order of %v, %v, %v wrong", a, b, c)
	}
}
