package sim

import (
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// TestOperators: operators calling the Maintenance service under every
// fault, with auto compaction off and, in half the seeds, the smallest
// quota, so that it fills up, find nothing wrong; between them the runs hash the same revision on two
// members, raise NOSPACE and recover from it, take backups, and a run replays.
func TestOperators(t *testing.T) {
	var hashes, noSpace, disarms, backups int
	for seed := uint64(1); seed <= 8; seed++ {
		o := DefaultOptions()
		o.Seed, o.Duration, o.Operators, o.Compaction = seed, 20*time.Second, 2, "never"
		w, err := New(o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if seed%2 == 1 {
			w.settings.QuotaBytes = quotaMinBytes // fills up within seconds
		}
		res := w.Run()
		if !res.OK() {
			t.Fatalf("seed %d: %s\n  replay: detcd-sim run %s --trace trace.txt", seed, strings.Join(res.Failures, "; "), o)
		}
		hashes += len(w.checks.maint.hashes)
		noSpace += len(w.checks.maint.noSpace)
		disarms += len(w.checks.maint.disarms)
		backups += w.checks.snap.taken
		if seed == 2 && run(t, o).TraceHash != res.TraceHash {
			t.Fatalf("seed %d with operators does not replay", seed)
		}
	}
	if hashes == 0 || noSpace == 0 || disarms == 0 || backups == 0 {
		t.Fatalf("the operators did too little: %d hashes compared, %d alarm lists with NOSPACE, %d disarms, %d backups", hashes, noSpace, disarms, backups)
	}
}

// TestNoSpaceWritesCheck: a write that costs space and succeeds above the
// revision of an alarm list that showed NOSPACE needs a disarm that may
// have been applied in between.
func TestNoSpaceWritesCheck(t *testing.T) {
	put := core.Request{Put: &pb.PutRequest{Key: []byte("g00/k0")}}
	del := core.Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("g00/k0")}}
	txnPut := core.Request{Txn: &pb.TxnRequest{Failure: []*pb.RequestOp{putOp("g00/k0", "v")}}}
	listAt := alarmSeen{rev: 10, sent: 1000}
	for _, tc := range []struct {
		name    string
		req     core.Request
		rev     int64
		failed  bool
		disarms []*disarmSent
		fail    bool
	}{
		{"put above the list, no disarm", put, 11, false, nil, true},
		{"txn that may put, above the list, no disarm", txnPut, 12, false, nil, true},
		{"put at the list's revision", put, 10, false, nil, false},
		{"delete above the list", del, 11, false, nil, false},
		{"failed put", put, 0, true, nil, false},
		{"disarm sent before the write returned", put, 11, false, []*disarmSent{{sent: 1500}}, false},
		{"disarm sent after the write returned", put, 11, false, []*disarmSent{{sent: 2500}}, true},
		{"disarm answered before the list was sent", put, 11, false, []*disarmSent{{sent: 100, answeredAt: 900}}, true},
		{"disarm sent before the list, answered after", put, 11, false, []*disarmSent{{sent: 100, answeredAt: 1100}}, false},
		{"disarm sent before the list, never answered", put, 11, false, []*disarmSent{{sent: 100}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &World{trace: newTracer(nil)}
			c := newCheckers(w)
			w.checks = c
			c.maint.noSpace, c.maint.disarms = []alarmSeen{listAt}, tc.disarms
			c.history = []*Op{{Req: tc.req, Rev: tc.rev, Failed: tc.failed, Return: 2000}}
			c.checkNoSpaceWrites()
			if got := len(c.failures) > 0; got != tc.fail {
				t.Fatalf("failed %v (%v), want %v", got, c.failures, tc.fail)
			}
		})
	}
}

// TestHashKVCheck: answers for the same hash and compaction revisions
// must carry the same hash, whichever member gave them.
func TestHashKVCheck(t *testing.T) {
	w := &World{trace: newTracer(nil)}
	c := newCheckers(w)
	w.checks = c
	m1, m2 := &member{name: "m1"}, &member{name: "m2"}
	c.checkHashKV(m1, &pb.HashKVResponse{HashRevision: 20, CompactRevision: 5, Hash: 1})
	c.checkHashKV(m2, &pb.HashKVResponse{HashRevision: 20, CompactRevision: 5, Hash: 1})
	c.checkHashKV(m2, &pb.HashKVResponse{HashRevision: 20, CompactRevision: 7, Hash: 2})
	c.checkHashKV(m1, &pb.HashKVResponse{HashRevision: 21, CompactRevision: 5, Hash: 3})
	if len(c.failures) != 0 {
		t.Fatalf("different revisions compared: %v", c.failures)
	}
	c.checkHashKV(m2, &pb.HashKVResponse{HashRevision: 21, CompactRevision: 5, Hash: 4})
	if len(c.failures) != 1 {
		t.Fatalf("a different hash at the same revisions passed: %v", c.failures)
	}
}
