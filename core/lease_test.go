package core_test

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal/memfs"
)

func grant(m *member, id, ttl int64) *pb.LeaseGrantResponse {
	m.t.Helper()
	r := m.do(core.Request{LeaseGrant: &pb.LeaseGrantRequest{ID: id, TTL: ttl}})
	if r.Err != nil {
		m.t.Fatalf("grant: %v", r.Err)
	}
	return r.Msg.(*pb.LeaseGrantResponse)
}

func TestLeaseLifecycle(t *testing.T) {
	m := startMember(t, memfs.New(), testConfig())
	g := grant(m, 0, 1) // below the minimum: 1.5 election timeouts = 2 s
	if g.ID == 0 || g.TTL != 2 {
		t.Fatalf("grant: %v", g)
	}
	if r := m.do(core.Request{LeaseGrant: &pb.LeaseGrantRequest{ID: g.ID, TTL: 5}}); !errors.Is(r.Err, core.ErrLeaseExist) {
		t.Fatalf("duplicate grant: %v", r.Err)
	}
	if r := m.do(core.Request{LeaseGrant: &pb.LeaseGrantRequest{ID: 9, TTL: 9_000_000_001}}); !errors.Is(r.Err, core.ErrLeaseTTLTooLarge) {
		t.Fatalf("too large: %v", r.Err)
	}
	m.do(core.Request{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("1"), Lease: g.ID}})
	m.do(core.Request{Put: &pb.PutRequest{Key: []byte("b"), Value: []byte("2"), Lease: g.ID}})
	m.do(core.Request{Put: &pb.PutRequest{Key: []byte("b"), Value: []byte("3"), IgnoreLease: true}})
	ttl := m.do(core.Request{LeaseTimeToLive: &pb.LeaseTimeToLiveRequest{ID: g.ID, Keys: true}}).Msg.(*pb.LeaseTimeToLiveResponse)
	if ttl.GrantedTTL != 2 || ttl.TTL > 2 || len(ttl.Keys) != 2 {
		t.Fatalf("time to live: %v", ttl)
	}
	// Keep it alive past its TTL, then let it expire: both keys go in one
	// revision.
	for i := 0; i < 5; i++ {
		for j := 0; j < 10; j++ {
			m.n.Tick()
		}
		m.settle()
		if r := m.do(core.Request{LeaseKeepAlive: &pb.LeaseKeepAliveRequest{ID: g.ID}}); r.Err != nil || r.Msg.(*pb.LeaseKeepAliveResponse).TTL != 2 {
			t.Fatalf("keep-alive %d: %v %v", i, r.Msg, r.Err)
		}
	}
	before := get(m, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")})
	if before.Count != 2 {
		t.Fatalf("keys kept alive are gone: %v", before)
	}
	for i := 0; i < 40; i++ {
		m.n.Tick()
		m.settle()
	}
	after := get(m, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")})
	if after.Count != 0 || after.Header.Revision != before.Header.Revision+1 {
		t.Fatalf("after expiry: count %d, revision %d -> %d", after.Count, before.Header.Revision, after.Header.Revision)
	}
	if r := m.do(core.Request{LeaseKeepAlive: &pb.LeaseKeepAliveRequest{ID: g.ID}}); r.Err != nil || r.Msg.(*pb.LeaseKeepAliveResponse).TTL != 0 {
		t.Fatalf("keep-alive of an expired lease: %v %v", r.Msg, r.Err)
	}
	if r := m.do(core.Request{LeaseTimeToLive: &pb.LeaseTimeToLiveRequest{ID: g.ID}}); r.Err != nil || r.Msg.(*pb.LeaseTimeToLiveResponse).TTL != -1 {
		t.Fatalf("time to live of an expired lease: %v %v", r.Msg, r.Err)
	}
	if r := m.do(core.Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: g.ID}}); !errors.Is(r.Err, core.ErrLeaseNotFound) {
		t.Fatalf("revoking it again: %v", r.Err)
	}
}

// TestLeasesSurviveRestart: leases, their keys and their checkpointed
// TTLs come back after a crash, from the log and from a checkpoint.
func TestLeasesSurviveRestart(t *testing.T) {
	fs := memfs.New()
	m := startMember(t, fs, testConfig())
	a := grant(m, 100, 3600)
	m.do(core.Request{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: a.ID}})
	m = m.crash(nil)
	l := m.do(core.Request{LeaseLeases: true}).Msg.(*pb.LeaseLeasesResponse)
	if len(l.Leases) != 1 || l.Leases[0].ID != 100 {
		t.Fatalf("leases after crash: %v", l)
	}
	m.n.ForceCheckpoint()
	m.settle()
	m = m.crash(nil)
	ttl := m.do(core.Request{LeaseTimeToLive: &pb.LeaseTimeToLiveRequest{ID: 100, Keys: true}}).Msg.(*pb.LeaseTimeToLiveResponse)
	if ttl.GrantedTTL != 3600 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "k" {
		t.Fatalf("lease after checkpoint and crash: %v", ttl)
	}
	r := m.do(core.Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 100}})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if g := get(m, &pb.RangeRequest{Key: []byte("k")}); g.Count != 0 {
		t.Fatalf("revoke left the key: %v", g)
	}
}
