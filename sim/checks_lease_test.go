package sim

import (
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestTTLFloor: a TimeToLive answer reports at least what is left of a
// TTL from the last renewal, less the drift and rounding, once that
// renewal was answered, from its term's leader or a later one; nor is
// the lease gone before then.
func TestTTLFloor(t *testing.T) {
	// A 10s lease renewed by a keep-alive sent at 1s, answered at 1.1s
	// in term 3.
	rec := func() *leaseRecord {
		return &leaseRecord{id: 7, ttl: 10, lastRenewSent: 1_000_000, renewedBy: 1_100_000, renewTerm: 3}
	}
	for _, tc := range []struct {
		name      string
		rec       func(*leaseRecord)
		sent, now int64
		term      uint64
		ttl       int64
		wantF     string
	}{
		{name: "all of it left", sent: 1_200_000, now: 1_300_000, term: 3, ttl: 9},
		{name: "within the rounding", sent: 5_000_000, now: 5_100_000, term: 3, ttl: 4},
		{name: "a second too few", sent: 5_000_000, now: 5_100_000, term: 3, ttl: 3, wantF: "at least 4s were left"},
		{name: "gone early", sent: 5_000_000, now: 5_100_000, term: 4, ttl: -1, wantF: "gone at 5100000us in term 4"},
		{name: "gone once the TTL passed", sent: 10_500_000, now: 10_600_000, term: 3, ttl: -1},
		{name: "a deposed leader's answer", sent: 5_000_000, now: 5_100_000, term: 2, ttl: 1},
		{name: "asked before the renewal was answered", sent: 1_050_000, now: 5_100_000, term: 3, ttl: 1},
		{name: "revoked by its holder", rec: func(r *leaseRecord) { r.revoked = true }, sent: 5_000_000, now: 5_100_000, term: 3, ttl: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &World{trace: newTracer(nil), settings: Settings{TickUs: 100_000}}
			c := newCheckers(w)
			w.now = tc.now
			r := rec()
			if tc.rec != nil {
				tc.rec(r)
			}
			c.checkTTLFloor(r, tc.sent, &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{RaftTerm: tc.term}, ID: 7, TTL: tc.ttl, GrantedTTL: 10})
			switch {
			case tc.wantF == "" && len(c.failures) > 0:
				t.Fatalf("failures %v, want none", c.failures)
			case tc.wantF != "" && (len(c.failures) != 1 || !strings.Contains(c.failures[0], tc.wantF)):
				t.Fatalf("failures %v, want one with %q", c.failures, tc.wantF)
			}
		})
	}
}
