package core_test

import (
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/disk"
)

func put(m *member, k, v string) *pb.PutResponse {
	m.t.Helper()
	r := m.do(core.Request{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}})
	if r.Err != nil {
		m.t.Fatalf("put %s: %v", k, r.Err)
	}
	return r.Msg.(*pb.PutResponse)
}

func get(m *member, r *pb.RangeRequest) *pb.RangeResponse {
	m.t.Helper()
	resp := m.do(core.Request{Range: r})
	if resp.Err != nil {
		m.t.Fatalf("range %v: %v", r, resp.Err)
	}
	return resp.Msg.(*pb.RangeResponse)
}

func TestPutGetDelete(t *testing.T) {
	m := startMember(t, memfs.New(), testConfig())
	if got := put(m, "a", "1").Header; got.Revision != 2 || got.MemberId != 1 || got.ClusterId != 100 || got.RaftTerm == 0 {
		t.Fatalf("first put header %v", got)
	}
	put(m, "a", "2")
	put(m, "b", "3")
	rr := get(m, &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")})
	if rr.Count != 2 || string(rr.Kvs[0].Value) != "2" || rr.Kvs[0].Version != 2 || rr.Kvs[0].CreateRevision != 2 || rr.Kvs[0].ModRevision != 3 {
		t.Fatalf("range: %v", rr)
	}
	d := m.do(core.Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), PrevKv: true}})
	dr := d.Msg.(*pb.DeleteRangeResponse)
	if dr.Deleted != 1 || dr.Header.Revision != 5 || string(dr.PrevKvs[0].Value) != "2" {
		t.Fatalf("delete: %v", dr)
	}
	d = m.do(core.Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}})
	if dr := d.Msg.(*pb.DeleteRangeResponse); dr.Deleted != 0 || dr.Header.Revision != 5 {
		t.Fatalf("deleting nothing bumped the revision: %v", dr)
	}
	if r := put(m, "a", "again"); r.Header.Revision != 6 {
		t.Fatalf("recreate: %v", r)
	}
	rr = get(m, &pb.RangeRequest{Key: []byte("a")})
	if kv := rr.Kvs[0]; kv.Version != 1 || kv.CreateRevision != 6 {
		t.Fatalf("recreated key should restart its version: %v", kv)
	}
	old := get(m, &pb.RangeRequest{Key: []byte("a"), Revision: 3, Serializable: true})
	if string(old.Kvs[0].Value) != "2" || old.Header.Revision != 6 {
		t.Fatalf("historical read: %v", old)
	}
}

func TestRequestErrors(t *testing.T) {
	m := startMember(t, memfs.New(), testConfig())
	put(m, "a", "1")
	manyOps := make([]*pb.RequestOp, 129)
	for i := range manyOps {
		manyOps[i] = &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(fmt.Sprint(i))}}}
	}
	putOp := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
	}
	delOp := func(k, end string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)}}}
	}
	tests := []struct {
		name string
		req  core.Request
		want error
	}{
		{"range empty key", core.Request{Range: &pb.RangeRequest{}}, core.ErrEmptyKey},
		{"range bad sort order", core.Request{Range: &pb.RangeRequest{Key: []byte("a"), SortOrder: 7}}, core.ErrInvalidSortOption},
		{"range bad sort target", core.Request{Range: &pb.RangeRequest{Key: []byte("a"), SortTarget: 9}}, core.ErrInvalidSortOption},
		{"range future rev", core.Request{Range: &pb.RangeRequest{Key: []byte("a"), Revision: 100}}, core.ErrFutureRev},
		{"put empty key", core.Request{Put: &pb.PutRequest{}}, core.ErrEmptyKey},
		{"put value with ignore_value", core.Request{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("x"), IgnoreValue: true}}, core.ErrValueProvided},
		{"put lease with ignore_lease", core.Request{Put: &pb.PutRequest{Key: []byte("a"), Lease: 5, IgnoreLease: true}}, core.ErrLeaseProvided},
		{"put ignore_value missing key", core.Request{Put: &pb.PutRequest{Key: []byte("zz"), IgnoreValue: true}}, core.ErrKeyNotFound},
		{"put unknown lease", core.Request{Put: &pb.PutRequest{Key: []byte("a"), Lease: 5}}, core.ErrLeaseNotFound},
		{"put too large", core.Request{Put: &pb.PutRequest{Key: []byte("a"), Value: make([]byte, 2<<20)}}, core.ErrRequestTooLarge},
		{"delete empty key", core.Request{DeleteRange: &pb.DeleteRangeRequest{}}, core.ErrEmptyKey},
		{"txn too many ops", core.Request{Txn: &pb.TxnRequest{Success: manyOps}}, core.ErrTooManyOps},
		{"txn compare empty key", core.Request{Txn: &pb.TxnRequest{Compare: []*pb.Compare{{}}}}, core.ErrEmptyKey},
		{"txn duplicate put", core.Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp("a"), putOp("a")}}}, core.ErrDuplicateKey},
		{"txn put in deleted range", core.Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{delOp("a", "c"), putOp("b")}}}, core.ErrDuplicateKey},
		{"txn nil op", core.Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{}}}}, core.ErrKeyNotFound},
		{"txn future range", core.Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp("q"), {Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 99}}}}}}, core.ErrFutureRev},
		{"compact future", core.Request{Compaction: &pb.CompactionRequest{Revision: 99}}, core.ErrFutureRev},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := m.n.Info().Revision
			r := m.do(tt.req)
			if !errors.Is(r.Err, tt.want) {
				t.Fatalf("got %v, want %v", r.Err, tt.want)
			}
			if after := m.n.Info().Revision; after != before {
				t.Fatalf("a failed request moved the revision %d -> %d", before, after)
			}
		})
	}
	if r := m.do(core.Request{Compaction: &pb.CompactionRequest{Revision: 2}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := m.do(core.Request{Compaction: &pb.CompactionRequest{Revision: 2}}); !errors.Is(r.Err, core.ErrCompacted) {
		t.Fatalf("compacting twice: %v", r.Err)
	}
	if r := m.do(core.Request{Range: &pb.RangeRequest{Key: []byte("a"), Revision: 1}}); !errors.Is(r.Err, core.ErrCompacted) {
		t.Fatalf("range below compaction: %v", r.Err)
	}
}

func TestTxn(t *testing.T) {
	m := startMember(t, memfs.New(), testConfig())
	put(m, "k", "v1")
	cas := func(expect int64, val string) *pb.TxnResponse {
		r := m.do(core.Request{Txn: &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: expect}}},
			Success: []*pb.RequestOp{
				{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k"), Value: []byte(val), PrevKv: true}}},
				{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k")}}},
			},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k")}}}},
		}})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r.Msg.(*pb.TxnResponse)
	}
	ok := cas(2, "v2")
	if !ok.Succeeded || ok.Header.Revision != 3 {
		t.Fatalf("cas: %v", ok)
	}
	if seen := ok.Responses[1].GetResponseRange().Kvs[0]; string(seen.Value) != "v2" {
		t.Fatalf("a range in a txn must see the txn's own put: %v", seen)
	}
	if prev := ok.Responses[0].GetResponsePut().PrevKv; string(prev.Value) != "v1" {
		t.Fatalf("prev kv: %v", prev)
	}
	failed := cas(2, "v3")
	if failed.Succeeded || failed.Header.Revision != 3 {
		t.Fatalf("a failed compare with only reads must not bump the revision: %v", failed)
	}
	// A missing key compares as version 0, and a value compare on it fails.
	r := m.do(core.Request{Txn: &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("nope"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("nope"), Value: []byte("x")}}}},
	}})
	if tr := r.Msg.(*pb.TxnResponse); !tr.Succeeded || tr.Header.Revision != 4 {
		t.Fatalf("create-if-absent: %v %v", tr, r.Err)
	}
}

func TestRestartKeepsAcknowledgedWrites(t *testing.T) {
	fs := memfs.New()
	m := startMember(t, fs, testConfig())
	for i := 0; i < 100; i++ {
		put(m, fmt.Sprintf("k%03d", i), fmt.Sprint(i))
	}
	m = m.crash(nil)
	rr := get(m, &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
	if rr.Count != 100 || rr.Header.Revision != 101 {
		t.Fatalf("after crash: count %d rev %d", rr.Count, rr.Header.Revision)
	}
	// And with a checkpoint in between, torn tail and all.
	m.n.ForceCheckpoint()
	m.settle()
	for i := 100; i < 150; i++ {
		put(m, fmt.Sprintf("k%03d", i), fmt.Sprint(i))
	}
	m = m.crash(func(string, int) int { return 7 })
	rr = get(m, &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), Serializable: true})
	if rr.Count != 150 || rr.Header.Revision != 151 {
		t.Fatalf("after checkpoint and crash: count %d rev %d", rr.Count, rr.Header.Revision)
	}
	m = m.restart()
	if rr := get(m, &pb.RangeRequest{Key: []byte("k149")}); string(rr.Kvs[0].Value) != "149" {
		t.Fatalf("after clean restart: %v", rr)
	}
}

// TestSerializableReadAfterRestart: a serializable read that reaches a
// restarted member before it has applied its committed log must wait for
// it, not answer from the older state (found by the interaction tests:
// without a checkpoint that state is the empty key space).
func TestSerializableReadAfterRestart(t *testing.T) {
	fs := memfs.New()
	m := startMember(t, fs, testConfig())
	put(m, "a", "1")
	put(m, "b", "2")
	if err := m.d.Close(); err != nil {
		t.Fatal(err)
	}
	n, d, err := disk.Open(fs, "data", m.cfg, disk.Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r := newMember(t, fs, m.cfg, n, d)
	id := r.request(core.Request{Range: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), Serializable: true}})
	r.settle()
	resp, ok := r.got[id]
	if !ok {
		t.Fatal("no answer once the member settled")
	}
	if rr := resp.Msg.(*pb.RangeResponse); rr.Count != 2 || rr.Header.Revision != 3 {
		t.Fatalf("serializable read right after a restart: %v %v", rr, resp.Err)
	}
}

// TestRestartReleasesAppliedLog: Restart clears each log entry it has
// applied once it leaves raft's catch-up window, so that the buffers the
// log was read into can be freed while the key space is rebuilt (a
// restart of an 8 GiB store that replayed gigabytes of log held them to
// the end), and keeps the window's entries whole.
func TestRestartReleasesAppliedLog(t *testing.T) {
	fs := memfs.New()
	cfg := testConfig()
	cfg.SnapshotCatchUpEntries = 10
	m := startMember(t, fs, cfg)
	put(m, "k000", "v")
	// The log after a checkpoint holds only puts, which Restart applies.
	m.n.ForceCheckpoint()
	m.settle()
	const puts = 50
	for i := 1; i <= puts; i++ {
		put(m, fmt.Sprintf("k%03d", i), fmt.Sprint(i))
	}
	if err := m.d.Close(); err != nil {
		t.Fatal(err)
	}
	snapDir, walDir := "data/member/snap", "data/member/wal"
	idxs, err := wal.ListCheckpoints(fs, snapDir)
	if err != nil || len(idxs) == 0 {
		t.Fatalf("checkpoints: %v %v", idxs, err)
	}
	var d core.Disk
	data, err := wal.ReadCheckpoint(fs, snapDir, idxs[len(idxs)-1])
	if err != nil {
		t.Fatal(err)
	}
	if d.Checkpoint, err = core.LoadCheckpoint(cfg, data); err != nil {
		t.Fatal(err)
	}
	w, rec, err := wal.Open(fs, wal.Options{Dir: walDir, SegmentBytes: 1 << 20}, idxs[len(idxs)-1])
	if err != nil {
		t.Fatal(err)
	}
	d.HardState, d.Entries = rec.HardState, rec.Entries
	if len(d.Entries) < puts {
		t.Fatalf("%d entries after the checkpoint, want at least %d", len(d.Entries), puts)
	}
	n, err := core.Restart(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	window := len(d.Entries) - int(cfg.SnapshotCatchUpEntries)
	for i, e := range d.Entries {
		if cleared := e.Data == nil; cleared != (i < window) {
			t.Errorf("entry %d of %d (index %d): cleared %v, want %v", i, len(d.Entries), e.Index, cleared, i < window)
		}
	}
	if n.AppliedIndex() != d.Entries[len(d.Entries)-1].Index {
		t.Fatalf("applied %d, want the log's last index %d", n.AppliedIndex(), d.Entries[len(d.Entries)-1].Index)
	}
	// The restart took the loaded key space over: a second may not share it.
	if _, err := core.Restart(cfg, d); err == nil {
		t.Fatal("a second restart from the same loaded checkpoint was accepted")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// And through the disk, as a server restarts.
	m = startMember(t, fs, cfg)
	rr := get(m, &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
	if rr.Count != puts+1 || rr.Header.Revision != puts+2 {
		t.Fatalf("after the restart: count %d rev %d", rr.Count, rr.Header.Revision)
	}
}
