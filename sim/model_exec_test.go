package sim

import (
	"flag"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// modelState is group 0 with k0=a (mod 5), k1=c (mod 6), k2=b (mod 7).
func modelState() groupState {
	var s groupState
	for i, v := range []string{"a", "c", "b"} {
		s.keys[i] = keyState{exists: true, value: v, mod: int64(5 + i), create: 5, version: 1}
	}
	s.floor = 7
	return s
}

func kvOf(s groupState, i int) *kvpb {
	k := s.keys[i]
	return &kvpb{Key: []byte(groupKey(0, i)), Value: []byte(k.value), ModRevision: k.mod, CreateRevision: k.create, Version: k.version}
}

func modTxn(res pb.Compare_CompareResult, mod int64, ok bool) *Op {
	return &Op{Kind: opTxn, Rev: 8,
		Req: core.Request{Txn: &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("g00/k0"), Target: pb.Compare_MOD, Result: res, TargetUnion: &pb.Compare_ModRevision{ModRevision: mod}}},
			Success: []*pb.RequestOp{putOp("g00/k0", "x")},
		}},
		Resp: &pb.TxnResponse{Header: &pb.ResponseHeader{Revision: 8}, Succeeded: ok, Responses: map[bool][]*pb.ResponseOp{true: {{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{}}}}}[ok]},
	}
}

func rangeOpOf(q *pb.RangeRequest, kvs []*kvpb, count int64, more bool) *Op {
	return &Op{Kind: opRangeGroup, Rev: 7, Req: core.Request{Range: q},
		Resp: &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 7}, Kvs: kvs, Count: count, More: more}}
}

// TestModelSteps: the model accepts what etcd answers and refuses what it
// would not: every compare result, limits with more and count, and etcd's
// sort of the first limit+1 keys when a target has no order.
func TestModelSteps(t *testing.T) {
	s := modelState()
	limited := func(limit int64, target pb.RangeRequest_SortTarget, order pb.RangeRequest_SortOrder) *pb.RangeRequest {
		return &pb.RangeRequest{Key: []byte("g00/"), RangeEnd: []byte("g000"), Limit: limit, SortTarget: target, SortOrder: order}
	}
	for _, tt := range []struct {
		name  string
		op    *Op
		legal bool
	}{
		{"mod 5 greater than 5 holds", modTxn(pb.Compare_GREATER, 5, true), false},
		{"mod 5 greater than 5 fails", modTxn(pb.Compare_GREATER, 5, false), true},
		{"mod 5 greater than 4 holds", modTxn(pb.Compare_GREATER, 4, true), true},
		{"mod 5 less than 5 holds", modTxn(pb.Compare_LESS, 5, true), false},
		{"mod 5 less than 6 holds", modTxn(pb.Compare_LESS, 6, true), true},
		{"mod 5 not equal 5 holds", modTxn(pb.Compare_NOT_EQUAL, 5, true), false},
		{"mod 5 equal 5 holds", modTxn(pb.Compare_EQUAL, 5, true), true},
		{"limit 2 of 3", rangeOpOf(limited(2, 0, 0), []*kvpb{kvOf(s, 0), kvOf(s, 1)}, 3, true), true},
		{"limit 2 gives 3", rangeOpOf(limited(2, 0, 0), []*kvpb{kvOf(s, 0), kvOf(s, 1), kvOf(s, 2)}, 3, true), false},
		{"limit 2 gives 1", rangeOpOf(limited(2, 0, 0), []*kvpb{kvOf(s, 0)}, 3, true), false},
		{"limit 2 without more", rangeOpOf(limited(2, 0, 0), []*kvpb{kvOf(s, 0), kvOf(s, 1)}, 3, false), false},
		{"limit 2 skips a key", rangeOpOf(limited(2, 0, 0), []*kvpb{kvOf(s, 0), kvOf(s, 2)}, 3, true), false},
		{"wrong count", rangeOpOf(limited(0, 0, 0), []*kvpb{kvOf(s, 0), kvOf(s, 1), kvOf(s, 2)}, 2, false), false},
		{"value descending, limit 1", rangeOpOf(limited(1, pb.RangeRequest_VALUE, pb.RangeRequest_DESCEND), []*kvpb{kvOf(s, 1)}, 3, true), true},
		{"value descending, limit 1, wrong key", rangeOpOf(limited(1, pb.RangeRequest_VALUE, pb.RangeRequest_DESCEND), []*kvpb{kvOf(s, 2)}, 3, true), false},
		// No order: etcd sorts k0, k1 (the first limit+1 by key) by value.
		{"value, no order, limit 1", rangeOpOf(limited(1, pb.RangeRequest_VALUE, pb.RangeRequest_NONE), []*kvpb{kvOf(s, 0)}, 3, true), true},
		{"mod descending, all", rangeOpOf(limited(0, pb.RangeRequest_MOD, pb.RangeRequest_DESCEND), []*kvpb{kvOf(s, 2), kvOf(s, 1), kvOf(s, 0)}, 3, false), true},
		{"mod descending, out of order", rangeOpOf(limited(0, pb.RangeRequest_MOD, pb.RangeRequest_DESCEND), []*kvpb{kvOf(s, 1), kvOf(s, 2), kvOf(s, 0)}, 3, false), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(stepModel(s, tt.op)) > 0; got != tt.legal {
				t.Errorf("%s: legal = %v, want %v", tt.op, got, tt.legal)
			}
		})
	}
}

// TestCompareUnknown: a revision only known to be above low decides a
// compare only where every such revision gives the same answer.
func TestCompareUnknown(t *testing.T) {
	for _, tt := range []struct {
		res         pb.Compare_CompareResult
		want        int64
		holds, know bool
	}{
		{pb.Compare_GREATER, 10, true, true},
		{pb.Compare_GREATER, 11, false, false},
		{pb.Compare_LESS, 11, false, true},
		{pb.Compare_LESS, 12, false, false},
		{pb.Compare_EQUAL, 10, false, true},
		{pb.Compare_EQUAL, 11, false, false},
		{pb.Compare_NOT_EQUAL, 10, true, true},
	} {
		holds, known := compareUnknown(tt.res, 10, tt.want)
		if known != tt.know || known && holds != tt.holds {
			t.Errorf("unknown above 10 %s %d = %v (known %v), want %v (known %v)", tt.res, tt.want, holds, known, tt.holds, tt.know)
		}
	}
}

// TestCompactionChecks: a read below a compaction applied before it was
// called must fail with ErrCompacted, ErrCompacted needs a compaction
// above the revision, and a read at the compaction's revision succeeds.
func TestCompactionChecks(t *testing.T) {
	for _, tt := range []struct {
		name  string
		rev   int64
		err   string
		fails bool
	}{
		{"below, compacted", 9, errKindCompacted, false},
		{"below, served", 9, "", true},
		{"at, served", 10, "", false},
		{"at, compacted", 10, errKindCompacted, true},
		{"seen, future", 10, errKindFutureRev, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(short(1), nil)
			if err != nil {
				t.Fatal(err)
			}
			c := w.checks
			c.compactions = []compaction{{rev: 10, at: 100}}
			op := &Op{Kind: opRangeAt, Call: 200, Return: 300, Seen: 20, Err: tt.err,
				Req: core.Request{Range: &pb.RangeRequest{Key: []byte("g00/k0"), Revision: tt.rev}}}
			if tt.err == "" {
				op.Resp = &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 20}}
			}
			c.checkRangeAt(op)
			if failed := len(c.failures) > 0; failed != tt.fails {
				t.Errorf("failures %v, want failing %v", c.failures, tt.fails)
			}
		})
	}
}

// TestSwarmDraws: each seed draws its own world unless flags pin it, and
// the world prints as flags that replay it.
func TestSwarmDraws(t *testing.T) {
	shapes := map[[4]int]bool{}
	for seed := uint64(1); seed <= 40; seed++ {
		o := SwarmOptions()
		o.Seed = seed
		w, err := New(o, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := w.Options()
		shapes[[4]int{got.Members, got.Clients, got.Watchers, got.LeaseClients}] = true
		again, err := ParseOptions(strings.Fields(got.String()))
		if err != nil {
			t.Fatal(err)
		}
		w2, _ := New(again, nil)
		if w2.Options().String() != got.String() || w2.Settings().String() != w.Settings().String() {
			t.Fatalf("seed %d: %s replays as %s", seed, got, w2.Options())
		}
		o.Members, o.Clients, o.Compaction = 5, 7, "revision"
		if w3, _ := New(o, nil); w3.Options().Members != 5 || w3.Options().Clients != 7 || w3.Settings().Compaction != "revision" ||
			w3.Options().Watchers != got.Watchers {
			t.Fatalf("seed %d: pinned members, clients and compaction drew %s, %s", seed, w3.Options(), w3.Settings())
		}
	}
	if len(shapes) < 20 {
		t.Errorf("40 seeds drew only %d world shapes", len(shapes))
	}
}

// TestSeedLineLeavesOutAsTheCommandLine: a seed file's run line and the
// same flags on `detcd-sim run` give one world; what a line leaves out is
// drawn from the seed in both.
func TestSeedLineLeavesOutAsTheCommandLine(t *testing.T) {
	line := "--seed 7 --members 3 --clients 8 --watchers 3 --leases 2"
	parsed, err := ParseOptions(strings.Fields(line))
	if err != nil {
		t.Fatal(err)
	}
	cli := SwarmOptions()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	finish := cli.RegisterFlags(fs)
	if err := fs.Parse(strings.Fields(line)); err != nil {
		t.Fatal(err)
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	if parsed.Operators != Drawn || parsed.String() != cli.String() {
		t.Fatalf("seed line parses as %s, the command line as %s", parsed, cli)
	}
}
