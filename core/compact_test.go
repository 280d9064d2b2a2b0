package core_test

import (
	"fmt"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal/memfs"
)

// compactionHistory writes txns transactions of keys puts each, so that
// a compaction has keys*txns records to go through.
func compactionHistory(m *member, keys, txns int) {
	m.t.Helper()
	for i := range txns {
		ops := make([]*pb.RequestOp, keys)
		for k := range ops {
			ops[k] = &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
				Key: fmt.Appendf(nil, "k%03d", k), Value: fmt.Appendf(nil, "v%d", i)}}}
		}
		if r := m.do(core.Request{Txn: &pb.TxnRequest{Success: ops}}); r.Err != nil {
			m.t.Fatalf("txn %d: %v", i, r.Err)
		}
	}
}

// TestCompactionRunsBetweenRequests: a physical compaction of many
// revisions does a bounded step of its work per StepBackground, and none
// in the Readys that serve requests, so puts sent while it runs are
// answered before it is; it answers once its work and its hash are done,
// and it ends where the same compaction with no puts during it ends.
func TestCompactionRunsBetweenRequests(t *testing.T) {
	const keys, txns = 100, 5 * core.CompactionStepRecordsMax / 100
	m := startMember(t, memfs.New(), testConfig())
	compactionHistory(m, keys, txns)
	rev := m.n.Rev()

	compactID := m.request(core.Request{Compaction: &pb.CompactionRequest{Revision: rev, Physical: true}})
	var puts []core.RequestID
	answered, steps := 0, 0
	for i := 0; ; i++ {
		if i > 10*txns*keys/core.CompactionStepRecordsMax {
			t.Fatalf("no answer to the compaction after %d steps", i)
		}
		puts = append(puts, m.request(core.Request{Put: &pb.PutRequest{Key: fmt.Appendf(nil, "k%03d", i%(keys+5)), Value: []byte("during")}}))
		// The turns that serve the put: they take no step of the
		// compaction, however many there are.
		for range 3 {
			m.drv.Process()
			m.env.RunPending()
		}
		if resp, ok := m.got[compactID]; ok {
			if resp.Err != nil {
				t.Fatalf("compaction: %v", resp.Err)
			}
			break
		}
		for _, id := range puts {
			if _, ok := m.got[id]; ok {
				answered++
				delete(m.got, id)
			}
		}
		m.drv.StepBackground()
		steps++
	}
	if want := txns*keys/core.CompactionStepRecordsMax - 1; steps < want {
		t.Errorf("compacted %d records in %d steps of %d, want at least %d", txns*keys, steps, core.CompactionStepRecordsMax, want)
	}
	if answered < steps-1 {
		t.Errorf("%d puts answered while the compaction ran %d steps, want one per step", answered, steps)
	}
	m.settle()

	ref := startMember(t, memfs.New(), testConfig())
	compactionHistory(ref, keys, txns)
	if r := ref.do(core.Request{Compaction: &pb.CompactionRequest{Revision: rev, Physical: true}}); r.Err != nil {
		t.Fatalf("reference compaction: %v", r.Err)
	}
	for i := range puts {
		put(ref, fmt.Sprintf("k%03d", i%(keys+5)), "during")
	}
	for _, at := range []int64{rev, 0} {
		got, err1 := m.n.HashKV(at)
		want, err2 := ref.n.HashKV(at)
		if err1 != nil || err2 != nil || got != want {
			t.Errorf("HashKV(%d) %+v (%v), with no puts during the compaction %+v (%v)", at, got, err1, want, err2)
		}
	}
	if got, want := m.n.CompactionHashes(), ref.n.CompactionHashes(); !slices.Equal(got, want) || len(got) != 1 {
		t.Errorf("compaction hashes %+v, with no puts during the compaction %+v", got, want)
	}
}
