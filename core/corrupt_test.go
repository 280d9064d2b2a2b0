package core_test

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal/memfs"
)

func alarm(m *member, action pb.AlarmRequest_AlarmAction, member uint64) *pb.AlarmResponse {
	m.t.Helper()
	r := m.do(core.Request{Alarm: &pb.AlarmRequest{Action: action, MemberID: member, Alarm: pb.AlarmType_CORRUPT}})
	if r.Err != nil {
		m.t.Fatalf("alarm %v: %v", action, r.Err)
	}
	return r.Msg.(*pb.AlarmResponse)
}

// corruptCases are what etcd's corrupt applier refuses and what it lets
// through, as requests to one member.
func corruptCases(lease int64) []struct {
	name    string
	req     core.Request
	refused bool
} {
	k := []byte("k")
	return []struct {
		name    string
		req     core.Request
		refused bool
	}{
		{"put", core.Request{Put: &pb.PutRequest{Key: k, Value: []byte("v")}}, true},
		{"delete", core.Request{DeleteRange: &pb.DeleteRangeRequest{Key: k}}, true},
		{"write txn", core.Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k}}}}}}, true},
		{"compaction", core.Request{Compaction: &pb.CompactionRequest{Revision: 1}}, true},
		{"lease grant", core.Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: 60}}, true},
		{"lease revoke", core.Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: lease}}, true},
		// Reads never go through the log, so etcd serves them.
		{"range", core.Request{Range: &pb.RangeRequest{Key: k}}, false},
		{"serializable range", core.Request{Range: &pb.RangeRequest{Key: k, Serializable: true}}, false},
		{"read txn", core.Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: k}}}}}}, false},
		{"alarm list", core.Request{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_GET}}, false},
		{"lease time to live", core.Request{LeaseTimeToLive: &pb.LeaseTimeToLiveRequest{ID: lease}}, false},
		{"status", core.Request{Status: true}, false},
	}
}

// TestCorruptAlarmFencesWrites: with a CORRUPT alarm raised, for any
// member, writes fail with ErrCorrupt, as etcd's corrupt applier makes
// them; clearing it lets them through again.
func TestCorruptAlarmFencesWrites(t *testing.T) {
	m := startMember(t, memfs.New(), testConfig())
	put(m, "k", "v0")
	g := m.do(core.Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: 60}})
	if g.Err != nil {
		t.Fatal(g.Err)
	}
	lease := g.Msg.(*pb.LeaseGrantResponse).ID
	// A member id other than this one's: the alarm fences the cluster.
	got := alarm(m, pb.AlarmRequest_ACTIVATE, 7)
	if len(got.Alarms) != 1 || got.Alarms[0].MemberID != 7 || got.Alarms[0].Alarm != pb.AlarmType_CORRUPT {
		t.Fatalf("activate answered %v", got.Alarms)
	}
	if !m.n.Corrupt() {
		t.Fatal("Corrupt() is false with the alarm raised")
	}
	for _, c := range corruptCases(lease) {
		r := m.do(c.req)
		if c.refused != errors.Is(r.Err, core.ErrCorrupt) {
			t.Errorf("%s with CORRUPT raised: err %v, refused want %v", c.name, r.Err, c.refused)
		}
	}
	// The alarm outlives a restart.
	m = m.restart()
	if r := m.do(core.Request{Put: &pb.PutRequest{Key: []byte("k")}}); !errors.Is(r.Err, core.ErrCorrupt) {
		t.Fatalf("put after restart with CORRUPT raised: %v", r.Err)
	}
	if got := alarm(m, pb.AlarmRequest_DEACTIVATE, 7); len(got.Alarms) != 1 {
		t.Fatalf("deactivate answered %v", got.Alarms)
	}
	for _, c := range corruptCases(lease) {
		if r := m.do(c.req); r.Err != nil {
			t.Errorf("%s after the alarm was cleared: %v", c.name, r.Err)
		}
	}
}

// TestRaiseCorrupt: the driver's check raises CORRUPT for a member through
// the log, once.
func TestRaiseCorrupt(t *testing.T) {
	m := startMember(t, memfs.New(), testConfig())
	m.n.RaiseCorrupt(3)
	m.n.RaiseCorrupt(3)
	m.settle()
	got := alarm(m, pb.AlarmRequest_GET, 0)
	if len(got.Alarms) != 1 || got.Alarms[0].MemberID != 3 || got.Alarms[0].Alarm != pb.AlarmType_CORRUPT {
		t.Fatalf("alarms %v, want CORRUPT for member 3", got.Alarms)
	}
	m.n.RaiseCorrupt(3) // already raised: nothing to propose
	if rd := m.n.Ready(); !rd.IsEmpty() {
		t.Fatalf("raising a raised alarm did something: %+v", rd)
	}
	if r := m.do(core.Request{Put: &pb.PutRequest{Key: []byte("k")}}); !errors.Is(r.Err, core.ErrCorrupt) {
		t.Fatalf("put: %v", r.Err)
	}
}
