package core_test

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal/memfs"
	"github.com/detcd/detcd/core/watch"
)

func createReq(key, end string, rev int64, opts ...func(*pb.WatchCreateRequest)) *pb.WatchRequest {
	c := &pb.WatchCreateRequest{Key: []byte(key), RangeEnd: []byte(end), StartRevision: rev}
	for _, o := range opts {
		o(c)
	}
	return &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}}
}

// takeWatch returns the watch responses so far, formatted one per line.
func (m *member) takeWatch() []string {
	var out []string
	for _, o := range m.watched {
		r := o.Resp
		s := fmt.Sprintf("id=%d rev=%d", r.WatchId, r.Header.Revision)
		if r.Created {
			s += " created"
		}
		if r.Canceled {
			s += " canceled"
		}
		if r.CompactRevision != 0 {
			s += fmt.Sprintf(" compact=%d", r.CompactRevision)
		}
		if r.CancelReason != "" {
			s += " reason=" + r.CancelReason
		}
		for _, ev := range r.Events {
			s += fmt.Sprintf(" %s:%s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
			if ev.PrevKv != nil {
				s += fmt.Sprintf("(prev %s)", ev.PrevKv.Value)
			}
		}
		out = append(out, s)
	}
	m.watched = nil
	return out
}

func (m *member) watchDo(id watch.StreamID, r *pb.WatchRequest) {
	m.n.WatchRequest(id, r)
	m.settle()
}

func expectWatch(t *testing.T, m *member, want ...string) {
	t.Helper()
	got := m.takeWatch()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("watch responses:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWatchLiveAndHistorical(t *testing.T) {
	m := startMember(t, memfs.New(), testConfig())
	put(m, "a", "1") // rev 2
	put(m, "b", "2") // rev 3
	m.watchOpen(1)
	m.watchDo(1, createReq("a", "", 0, func(c *pb.WatchCreateRequest) { c.PrevKv = true }))
	m.watchDo(1, createReq("a", "c", 2, func(c *pb.WatchCreateRequest) {
		c.Filters = []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}
	}))
	expectWatch(t, m,
		"id=0 rev=3 created",
		"id=1 rev=3 created",
		"id=1 rev=3 PUT:a=1@2 PUT:b=2@3",
	)
	put(m, "a", "3")
	m.do(core.Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("c")}})
	expectWatch(t, m,
		"id=0 rev=4 PUT:a=3@4(prev 1)",
		"id=1 rev=4 PUT:a=3@4",
		"id=0 rev=5 DELETE:a=@5(prev 3)",
	)
	// A transaction's events arrive together.
	m.do(core.Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Value: []byte("x")}}},
		{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Value: []byte("y")}}},
	}}})
	expectWatch(t, m,
		"id=0 rev=6 PUT:a=x@6",
		"id=1 rev=6 PUT:a=x@6 PUT:b=y@6",
	)
	m.watchDo(1, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: 1}}})
	m.watchDo(1, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
	expectWatch(t, m, "id=1 rev=6 canceled", "id=-1 rev=6")
}

func TestWatchErrorsAndCompaction(t *testing.T) {
	m := startMember(t, memfs.New(), testConfig())
	for i := 0; i < 5; i++ {
		put(m, "k", fmt.Sprint(i)) // revs 2..6
	}
	m.do(core.Request{Compaction: &pb.CompactionRequest{Revision: 4}})
	m.watchOpen(7)
	m.watchDo(7, createReq("k", "", 3))
	m.watchDo(7, createReq("k", "", 4, func(c *pb.WatchCreateRequest) { c.WatchId = 9 }))
	m.watchDo(7, createReq("k", "", 0, func(c *pb.WatchCreateRequest) { c.WatchId = 9 }))
	m.watchDo(7, createReq("z", "a", 0))
	m.watchDo(7, createReq("k", "", -1))
	expectWatch(t, m,
		"id=0 rev=6 created",
		"id=0 rev=0 canceled compact=4",
		"id=9 rev=6 created",
		"id=9 rev=6 PUT:k=2@4 PUT:k=3@5 PUT:k=4@6",
		"id=-1 rev=6 created canceled reason=mvcc: duplicate watch ID provided on the WatchStream",
		"id=-1 rev=6 created canceled reason=mvcc: watcher range is empty",
		"id=-1 rev=6 created canceled reason=mvcc: required revision has been compacted",
	)
}

// TestWatchFromCompactRevGetsDelete: etcd keeps a tombstone at the
// compaction revision (etcd #18089), so a watcher starting there learns
// that the key is gone, with no prev_kv (the revision before is
// compacted); once a later compaction passes it, it is gone.
func TestWatchFromCompactRevGetsDelete(t *testing.T) {
	m := startMember(t, memfs.New(), testConfig())
	put(m, "k", "1")                                                          // rev 2
	m.do(core.Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k")}}) // rev 3
	put(m, "j", "1")                                                          // rev 4
	m.do(core.Request{Compaction: &pb.CompactionRequest{Revision: 3}})
	m.watchOpen(1)
	m.watchDo(1, createReq("k", "", 3, func(c *pb.WatchCreateRequest) { c.PrevKv = true }))
	m.watchDo(1, createReq("a", "z", 3, func(c *pb.WatchCreateRequest) { c.WatchId = 5 }))
	expectWatch(t, m,
		"id=0 rev=4 created",
		"id=0 rev=4 DELETE:k=@3",
		"id=5 rev=4 created",
		"id=5 rev=4 DELETE:k=@3 PUT:j=1@4",
	)
	m.do(core.Request{Compaction: &pb.CompactionRequest{Revision: 4}})
	m.watchDo(1, createReq("a", "z", 4, func(c *pb.WatchCreateRequest) { c.WatchId = 6 }))
	expectWatch(t, m, "id=6 rev=4 created", "id=6 rev=4 PUT:j=1@4")
}

// TestWatchSlowConsumer: a stream that stops taking responses never holds
// writes back; its watcher falls behind and catches up, in order and
// without a gap, once the stream takes responses again.
func TestWatchSlowConsumer(t *testing.T) {
	m := startMember(t, memfs.New(), testConfig())
	m.watchOpen(1)
	m.watchDo(1, createReq("k", "", 0))
	m.takeWatch()
	m.holdCredit = true
	value := strings.Repeat("v", 1<<20)
	for i := 0; i < 20; i++ {
		put(m, "k", value)
	}
	held := len(m.takeWatch())
	if held >= 20 {
		t.Fatalf("a stream with no credit got all %d responses", held)
	}
	m.holdCredit = false
	for _, o := range m.held {
		m.n.WatchCredit(o.Stream, o.Bytes)
	}
	m.held = nil
	m.settle()
	var revs []int64
	for _, line := range m.takeWatch() {
		revs = append(revs, int64(strings.Count(line, "PUT")))
	}
	total := int64(held)
	for _, n := range revs {
		total += n
	}
	if total != 20 {
		t.Fatalf("after catching up the watcher saw %d of 20 puts", total)
	}
}
