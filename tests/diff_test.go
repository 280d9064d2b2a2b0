package tests

// The differential test: rapid draws sequences of KV and maintenance
// requests, each request goes to an embedded real etcd 3.7.3 and to an
// in-process detcd in the same order, and the two answers must be the same
// message (cluster and member ids aside; revisions and raft terms
// included) or the same gRPC error, code and message.
//
// Both servers live for the whole test and accumulate the same history, so
// revisions stay comparable across rapid's cases, which makes for long
// histories with many compactions; each case works under its own key
// prefix. The generators draw revisions relative to that history (one a
// case produced, the current one, the compaction revision, ...), not
// absolute ones. When a case leaves the two servers in different states,
// or once a difference was found and rapid shrinks it, each case starts on
// a fresh pair, so that the smallest failing sequence rapid reports shows
// all the failure needs.
//
// Raw gRPC clients are used on purpose: clientv3 retries and rewrites
// requests, which would hide differences.
//
// Knobs: -rapid.checks (cases per subtest; TestMain makes it 500 unless
// given), -rapid.steps (mean requests per case, default 30), -rapid.seed
// to replay a run, -rapid.shrinktime (default 30s; more gives smaller
// cases), -diff.collect to list every kind of difference instead of
// stopping at the first.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"pgregory.net/rapid"
)

// diffCollect turns the test from "stop at the first difference and
// shrink it" into "note every kind of difference and go on", for surveying
// how far detcd is from etcd. The test still fails if any was found.
var diffCollect = flag.Bool("diff.collect", false, "TestDiff: log every kind of difference once instead of stopping at the first")

// maxTxnOps is etcd's default --max-txn-ops, which both servers run with.
const maxTxnOps = 128

// side is one server of the pair, reached over a raw gRPC connection.
type side struct {
	name string
	conn *grpc.ClientConn
	kv   pb.KVClient
	mt   pb.MaintenanceClient
	stop func()
}

func dial(t testing.TB, name, addr string, stop func()) *side {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Big enough for the oversized requests the test sends on purpose
		// and for any answer, so that only the servers' limits apply.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	return &side{name: name, conn: conn, kv: pb.NewKVClient(conn), mt: pb.NewMaintenanceClient(conn), stop: stop}
}

func (s *side) close() {
	s.conn.Close()
	s.stop()
}

// diffPair is the two servers and what the generators need to know about
// their shared history (taken from etcd's answers).
type diffPair struct {
	t           *testing.T
	etcd, detcd *side
	rev         int64    // the newest header revision seen
	compactRev  int64    // the last successful compaction's revision
	compacting  bool     // etcd may still be compacting in the background
	failed      bool     // a difference was found: rapid is shrinking it
	firstDiff   string   // the details of the first difference
	recent      []string // the last recentMax calls and answers, for the first difference
	starts      int

	calls, errs map[string]int // requests sent per method, and etcd's refusals per method and message

	// With -diff.collect: each kind of difference seen, once, in order.
	seen  map[string]bool
	diffs []string
}

// collect notes a difference under its signature, so that each kind is
// reported once.
func (p *diffPair) collect(sig, detail string) {
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if !p.seen[sig] {
		p.seen[sig] = true
		p.diffs = append(p.diffs, sig+"\n"+detail)
	}
}

// coarseSignature names a difference by the method and the two error
// codes and messages, or only the method when both answered.
func coarseSignature(method string, eerr, derr error) string {
	if eerr != nil || derr != nil {
		es, ds := status.Convert(eerr), status.Convert(derr)
		return fmt.Sprintf("%s: etcd %v %q / detcd %v %q", method, es.Code(), es.Message(), ds.Code(), ds.Message())
	}
	return method + ": the answers differ"
}

// diffSignature is coarseSignature with the differing fields named, for
// -diff.collect.
func diffSignature(method string, eerr, derr error, er, dr proto.Message) string {
	if eerr != nil || derr != nil {
		return coarseSignature(method, eerr, derr)
	}
	return method + ": fields " + strings.Join(diffPaths(er.ProtoReflect(), dr.ProtoReflect(), ""), ",")
}

// diffPaths lists the fields that differ between a and b, with list
// indices left out so that the same kind of difference has one name.
func diffPaths(a, b protoreflect.Message, prefix string) []string {
	var out []string
	fields := a.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		va, vb := a.Get(fd), b.Get(fd)
		switch {
		case fd.IsList() && fd.Message() != nil:
			la, lb := va.List(), vb.List()
			if la.Len() != lb.Len() {
				out = append(out, name+".len")
				continue
			}
			for j := range la.Len() {
				for _, d := range diffPaths(la.Get(j).Message(), lb.Get(j).Message(), name+"[].") {
					if !slices.Contains(out, d) {
						out = append(out, d)
					}
				}
			}
		case fd.Message() != nil && !fd.IsMap():
			if a.Has(fd) != b.Has(fd) {
				out = append(out, name+".presence")
				continue
			}
			out = append(out, diffPaths(va.Message(), vb.Message(), name+".")...)
		case !va.Equal(vb):
			out = append(out, name)
		}
	}
	return out
}

func newDiffPair(t *testing.T) *diffPair {
	p := &diffPair{t: t, calls: map[string]int{}, errs: map[string]int{}}
	p.start()
	t.Cleanup(p.close)
	return p
}

func (p *diffPair) start() {
	p.starts++
	eaddr, estop := startEmbeddedEtcd(p.t, true)
	daddr, dstop := startInProcDetcd(p.t, true)
	p.etcd = dial(p.t, "etcd", eaddr, estop)
	p.detcd = dial(p.t, "detcd", daddr, dstop)
	p.rev, p.compactRev, p.compacting = 1, 0, false
}

func (p *diffPair) close() {
	if p.etcd != nil {
		p.etcd.close()
		p.detcd.close()
		p.etcd, p.detcd = nil, nil
	}
}

// inSync reports whether both servers hold the same key space: the same
// HashKV answer at the current revision.
func (p *diffPair) inSync() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, eerr := p.etcd.mt.HashKV(ctx, &pb.HashKVRequest{})
	d, derr := p.detcd.mt.HashKV(ctx, &pb.HashKVRequest{})
	if eerr != nil || derr != nil {
		return false
	}
	clearIDs(e)
	clearIDs(d)
	return proto.Equal(e, d)
}

// recentMax bounds the calls a difference is reported with: enough to
// cover the iterations that led up to it on the shared history.
const recentMax = 400

func (p *diffPair) remember(line string) {
	if len(line) > 3000 {
		line = line[:3000] + "..."
	}
	if len(p.recent) == recentMax {
		p.recent = slices.Delete(p.recent, 0, 1)
	}
	p.recent = append(p.recent, line)
}

// call sends one request to both servers and fails the iteration unless
// the answers are the same. It returns etcd's answer for the generators.
func call[Req, Resp proto.Message](rt *rapid.T, p *diffPair, method string, req Req, f func(context.Context, *side, Req) (Resp, error)) (Resp, error) {
	rt.Helper()
	rt.Logf("-> %s %s", method, brief(req))
	p.remember("-> " + method + " " + brief(req))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	er, eerr := f(ctx, p.etcd, req)
	dr, derr := f(ctx, p.detcd, req)
	if eerr != nil {
		p.remember("<- etcd error " + status.Convert(eerr).Message())
	} else {
		p.remember("<- etcd " + brief(er))
	}
	p.calls[method]++
	if eerr != nil {
		p.errs[method+": "+status.Convert(eerr).Message()]++
	}
	var detail string
	switch {
	case eerr != nil && derr != nil:
		es, ds := status.Convert(eerr), status.Convert(derr)
		rt.Logf("<- error %v: %q", es.Code(), es.Message())
		if es.Code() != ds.Code() || es.Message() != ds.Message() {
			detail = fmt.Sprintf("DIFF %s %s:\n  etcd  error: code=%v msg=%q\n  detcd error: code=%v msg=%q", method, brief(req), es.Code(), es.Message(), ds.Code(), ds.Message())
		}
	case eerr != nil:
		es := status.Convert(eerr)
		detail = fmt.Sprintf("DIFF %s %s:\n  etcd  error: code=%v msg=%q\n  detcd ok: %s", method, brief(req), es.Code(), es.Message(), brief(dr))
	case derr != nil:
		ds := status.Convert(derr)
		detail = fmt.Sprintf("DIFF %s %s:\n  etcd  ok: %s\n  detcd error: code=%v msg=%q", method, brief(req), brief(er), ds.Code(), ds.Message())
	default:
		clearIDs(er)
		clearIDs(dr)
		rt.Logf("<- %s", brief(er))
		if !proto.Equal(er, dr) {
			detail = fmt.Sprintf("DIFF %s %s:\n  etcd:  %s\n  detcd: %s\n  (-etcd +detcd):\n%s", method, brief(req), brief(er), brief(dr), cmp.Diff(er, dr, protocmp.Transform()))
		}
	}
	if detail != "" {
		rt.Logf("%s", detail)
		if *diffCollect {
			p.collect(diffSignature(method, eerr, derr, er, dr), detail)
		} else {
			// The failure message says little: rapid only shrinks a
			// failure whose message repeats word for word, and the first
			// failing case ran on the shared history while its replays run
			// on fresh servers, where revisions, hashes and even which
			// fields differ can change. The details are in the log above.
			p.failed = true
			if p.firstDiff == "" {
				p.firstDiff = detail + "\nafter these calls (etcd's answers):\n  " + strings.Join(p.recent, "\n  ")
			}
			rt.Fatalf("DIFF %s", coarseSignature(method, eerr, derr))
		}
	}
	if eerr == nil && derr == nil {
		if h := headerOf(er); h != nil && h.Revision > p.rev {
			p.rev = h.Revision
		}
	}
	return er, eerr
}

func headerOf(m proto.Message) *pb.ResponseHeader {
	if h, ok := m.(interface{ GetHeader() *pb.ResponseHeader }); ok {
		return h.GetHeader()
	}
	return nil
}

// clearIDs zeroes cluster_id and member_id in every response header inside
// m: the two servers are different clusters. Revision and raft_term stay.
func clearIDs(m proto.Message) {
	if h, ok := m.(*pb.ResponseHeader); ok {
		h.ClusterId, h.MemberId = 0, 0
		return
	}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil || fd.IsMap():
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				clearIDs(v.List().Get(i).Message().Interface())
			}
		default:
			clearIDs(v.Message().Interface())
		}
		return true
	})
}

// brief formats a message on one line with long byte strings cut short,
// so that a 2 MiB value does not flood the log.
func brief(m proto.Message) string {
	c := proto.Clone(m)
	shorten(c.ProtoReflect())
	return prototext.MarshalOptions{}.Format(c)
}

func shorten(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.BytesKind && !fd.IsList() && len(v.Bytes()) > 64:
			b := v.Bytes()
			m.Set(fd, protoreflect.ValueOfBytes(fmt.Appendf(bytes.Clone(b[:16]), "...(%d bytes)", len(b))))
		case fd.Message() == nil || fd.IsMap():
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				shorten(v.List().Get(i).Message())
			}
		default:
			shorten(v.Message())
		}
		return true
	})
}

// The gRPC calls, one per method, for call.
func doRange(ctx context.Context, s *side, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	return s.kv.Range(ctx, r)
}

func doPut(ctx context.Context, s *side, r *pb.PutRequest) (*pb.PutResponse, error) {
	return s.kv.Put(ctx, r)
}

func doDelete(ctx context.Context, s *side, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	return s.kv.DeleteRange(ctx, r)
}

func doTxn(ctx context.Context, s *side, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	return s.kv.Txn(ctx, r)
}

func doCompact(ctx context.Context, s *side, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	return s.kv.Compact(ctx, r)
}

func doHashKV(ctx context.Context, s *side, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	return s.mt.HashKV(ctx, r)
}

// doRangeStream reads the whole stream. Its chunks are returned as the
// range responses of a TxnResponse, only so that call can compare the
// sequence with one proto.Equal; the wrapper's own fields stay empty. An
// error after some chunks counts as the answer.
func doRangeStream(ctx context.Context, s *side, r *pb.RangeRequest) (*pb.TxnResponse, error) {
	st, err := s.kv.RangeStream(ctx, r)
	if err != nil {
		return nil, err
	}
	out := &pb.TxnResponse{}
	for {
		chunk, err := st.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out.Responses = append(out.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: chunk.RangeResponse}})
	}
}

// iteration is one rapid test case: a key prefix of its own and the
// revisions its requests produced, for the generators to draw from.
type iteration struct {
	p        *diffPair
	prefix   string
	startRev int64
	revs     []int64
	hashKV   bool // HashKV at drawn revisions, and compaction at revision 0
}

// suffixes are the keys an iteration uses under its prefix: few, so that
// requests collide, with a nested pair for prefix ranges.
var suffixes = []string{"a", "b", "c", "a/1", "a/2", ""}

func (it *iteration) key(t *rapid.T, label string) []byte {
	return []byte(it.prefix + rapid.SampledFrom(suffixes).Draw(t, label))
}

// rangeEnd draws a range end for key: none, the prefix end, "\x00" (every
// key from key on), an explicit end, an end below the key, or the key.
func (it *iteration) rangeEnd(t *rapid.T, key []byte, label string) []byte {
	switch rapid.IntRange(0, 5).Draw(t, label) {
	case 1:
		return prefixEnd(key)
	case 2:
		return []byte{0}
	case 3:
		return it.key(t, label+"Key")
	case 4:
		return []byte(it.prefix) // below every key of the iteration but the prefix itself
	case 5:
		return slices.Clone(key)
	}
	return nil
}

// prefixEnd is clientv3.GetPrefixRangeEnd.
func prefixEnd(key []byte) []byte {
	end := bytes.Clone(key)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// value draws a value: empty, short ones that repeat (so VALUE compares
// sometimes hold), and longer ones.
func (it *iteration) value(t *rapid.T, label string) []byte {
	switch rapid.IntRange(0, 5).Draw(t, label) {
	case 0:
		return nil
	case 1:
		return []byte("v1")
	case 2:
		return []byte("v2")
	case 3:
		return rapid.SliceOfN(rapid.Byte(), 1, 32).Draw(t, label+"Bytes")
	case 4:
		return bytes.Repeat([]byte("x"), 1000)
	default:
		return bytes.Repeat([]byte("y"), 10000)
	}
}

// revision draws a revision relative to the shared history: 0, one this
// iteration produced, the current one, future ones, the compaction
// revision and one below it, one from before the iteration, a negative.
func (it *iteration) revision(t *rapid.T, label string) int64 {
	p := it.p
	switch rapid.IntRange(0, 8).Draw(t, label) {
	case 1:
		if len(it.revs) > 0 {
			return rapid.SampledFrom(it.revs).Draw(t, label+"Seen")
		}
		return p.rev
	case 2:
		return p.rev
	case 3:
		return p.rev + 1
	case 4:
		return p.rev + 1000
	case 5:
		return p.compactRev
	case 6:
		return max(p.compactRev-1, 1)
	case 7:
		return max(it.startRev-1, 1)
	case 8:
		return -1
	}
	return 0
}

// optRevision is 0 (no filter) or a drawn revision.
func (it *iteration) optRevision(t *rapid.T, label string) int64 {
	if !rapid.Bool().Draw(t, label) {
		return 0
	}
	return it.revision(t, label+"Rev")
}

func (it *iteration) rangeRequest(t *rapid.T) *pb.RangeRequest {
	r := &pb.RangeRequest{Key: it.key(t, "key")}
	r.RangeEnd = it.rangeEnd(t, r.Key, "rangeEnd")
	if rapid.IntRange(0, 9).Draw(t, "wholeKeySpace") == 9 {
		// Every key of every iteration so far: both servers hold the same.
		r.Key, r.RangeEnd = []byte{0}, []byte{0}
	}
	r.Limit = rapid.SampledFrom([]int64{0, 1, 2, 3, -1}).Draw(t, "limit")
	if rapid.Bool().Draw(t, "atRevision") {
		r.Revision = it.revision(t, "revision")
	}
	if rapid.IntRange(0, 2).Draw(t, "sorted") == 2 {
		r.SortOrder = pb.RangeRequest_SortOrder(rapid.IntRange(0, 2).Draw(t, "sortOrder"))
		r.SortTarget = pb.RangeRequest_SortTarget(rapid.IntRange(0, 4).Draw(t, "sortTarget"))
		if rapid.IntRange(0, 4).Draw(t, "badSort") == 4 {
			// Values outside the enums: etcd refuses them.
			r.SortOrder = pb.RangeRequest_SortOrder(rapid.SampledFrom([]int32{0, 3, -1}).Draw(t, "badSortOrder"))
			r.SortTarget = pb.RangeRequest_SortTarget(rapid.SampledFrom([]int32{0, 5, -1}).Draw(t, "badSortTarget"))
		}
	}
	r.Serializable = rapid.Bool().Draw(t, "serializable")
	r.KeysOnly = rapid.Bool().Draw(t, "keysOnly")
	r.CountOnly = rapid.Bool().Draw(t, "countOnly")
	if rapid.IntRange(0, 3).Draw(t, "filtered") == 3 {
		r.MinModRevision = it.optRevision(t, "minMod")
		r.MaxModRevision = it.optRevision(t, "maxMod")
		r.MinCreateRevision = it.optRevision(t, "minCreate")
		r.MaxCreateRevision = it.optRevision(t, "maxCreate")
	}
	return r
}

func (it *iteration) putRequest(t *rapid.T) *pb.PutRequest {
	r := &pb.PutRequest{Key: it.key(t, "key"), PrevKv: rapid.Bool().Draw(t, "prevKv")}
	r.IgnoreValue = rapid.IntRange(0, 4).Draw(t, "ignoreValue") == 4
	if !r.IgnoreValue {
		r.Value = it.value(t, "value")
	}
	r.IgnoreLease = rapid.IntRange(0, 4).Draw(t, "ignoreLease") == 4
	return r
}

func (it *iteration) deleteRequest(t *rapid.T) *pb.DeleteRangeRequest {
	r := &pb.DeleteRangeRequest{Key: it.key(t, "key"), PrevKv: rapid.Bool().Draw(t, "prevKv")}
	r.RangeEnd = it.rangeEnd(t, r.Key, "rangeEnd")
	return r
}

func (it *iteration) compare(t *rapid.T) *pb.Compare {
	c := &pb.Compare{Key: it.key(t, "cmpKey")}
	if rapid.IntRange(0, 3).Draw(t, "cmpRanged") == 3 {
		c.RangeEnd = it.rangeEnd(t, c.Key, "cmpRangeEnd")
	}
	c.Result = pb.Compare_CompareResult(rapid.IntRange(0, 3).Draw(t, "cmpResult"))
	c.Target = pb.Compare_CompareTarget(rapid.IntRange(0, 4).Draw(t, "cmpTarget"))
	switch c.Target {
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: rapid.Int64Range(0, 3).Draw(t, "cmpVersion")}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: it.revision(t, "cmpCreate")}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: it.revision(t, "cmpMod")}
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: it.value(t, "cmpValue")}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: rapid.Int64Range(0, 1).Draw(t, "cmpLease")}
	}
	return c
}

func (it *iteration) requestOp(t *rapid.T, depth int) *pb.RequestOp {
	// Mostly reads: two writes of the same key in one branch make the
	// whole transaction invalid, and that should not be the usual case.
	switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
	case op >= 8 && depth < 2:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: it.txnRequest(t, depth+1)}}
	case op >= 6:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: it.deleteRequest(t)}}
	case op >= 4:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: it.putRequest(t)}}
	default:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: it.rangeRequest(t)}}
	}
}

func (it *iteration) txnRequest(t *rapid.T, depth int) *pb.TxnRequest {
	r := &pb.TxnRequest{}
	for range rapid.IntRange(0, 3).Draw(t, "compares") {
		r.Compare = append(r.Compare, it.compare(t))
	}
	for range rapid.IntRange(0, 3).Draw(t, "success") {
		r.Success = append(r.Success, it.requestOp(t, depth))
	}
	for range rapid.IntRange(0, 3).Draw(t, "failure") {
		r.Failure = append(r.Failure, it.requestOp(t, depth))
	}
	return r
}

func (it *iteration) noteRev(h *pb.ResponseHeader) {
	if h != nil {
		it.revs = append(it.revs, h.Revision)
	}
}

// The actions rapid chooses from.

func (it *iteration) Put(t *rapid.T) {
	resp, err := call(t, it.p, "Put", it.putRequest(t), doPut)
	if err == nil {
		it.noteRev(resp.Header)
	}
}

func (it *iteration) Range(t *rapid.T) {
	call(t, it.p, "Range", it.rangeRequest(t), doRange)
}

// RangeStream is etcd 3.7's chunked range: the chunks, not only their
// sum, must be the same.
func (it *iteration) RangeStream(t *rapid.T) {
	call(t, it.p, "RangeStream", it.rangeRequest(t), doRangeStream)
}

func (it *iteration) DeleteRange(t *rapid.T) {
	resp, err := call(t, it.p, "DeleteRange", it.deleteRequest(t), doDelete)
	if err == nil {
		it.noteRev(resp.Header)
	}
}

func (it *iteration) Txn(t *rapid.T) {
	r := it.txnRequest(t, 0)
	if rapid.Bool().Draw(t, "writeThenRead") {
		// Writes followed by reads of the same keys in one branch: the
		// reads must see the writes. A put and a delete of the same key
		// in one branch is a duplicate, so they go to different keys.
		all := &pb.RangeRequest{Key: []byte(it.prefix), RangeEnd: prefixEnd([]byte(it.prefix))}
		ops := []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(it.prefix + "b"), Value: it.value(t, "wtrValue"), PrevKv: true}}},
			{Request: &pb.RequestOp_RequestRange{RequestRange: all}},
			{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(it.prefix + "a"), RangeEnd: []byte(it.prefix + "b"), PrevKv: true}}},
			{Request: &pb.RequestOp_RequestRange{RequestRange: all}},
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(it.prefix + "c"), IgnoreValue: true, PrevKv: true}}},
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(it.prefix), RangeEnd: []byte{0}, CountOnly: true}}},
		}
		if rapid.Bool().Draw(t, "wtrFailure") {
			r.Failure = ops
		} else {
			r.Success = ops
		}
	}
	if avoidEtcdGap(r) {
		t.Logf(`a delete to "\x00" ends at "\xff": etcd 3.7.3 would let the transaction re-create a key it deletes`)
	}
	resp, err := call(t, it.p, "Txn", r, doTxn)
	if err == nil {
		it.noteRev(resp.Header)
	}
}

// avoidEtcdGap keeps r out of a gap in etcd 3.7.3's duplicate check,
// which reads a delete range ending in "\x00" (every key from its start
// on) as empty: a transaction may then delete a key that way and put it
// again, at one revision. etcd goes wrong after that. With ignore_value or
// ignore_lease the put finds no previous value and etcd panics while
// applying, which ends the whole process (see TestTxnAtomicWhereEtcdPanics
// for detcd on that request). Otherwise its HashKV still counts the key's
// revision from before the delete, and a compaction at that revision
// removes the new value from its backend, after which a read of the key
// stops etcd. detcd answers such a transaction as etcd does but keeps the
// new value. Here such deletes end at "\xff" instead, above every key the
// test writes, so that both refuse the transaction as a duplicate key. It
// reports whether it changed anything.
func avoidEtcdGap(r *pb.TxnRequest) bool {
	var fromKey []*pb.DeleteRangeRequest
	var puts [][]byte
	var walk func(*pb.TxnRequest)
	walk = func(r *pb.TxnRequest) {
		for _, op := range slices.Concat(r.Success, r.Failure) {
			switch {
			case op.GetRequestDeleteRange() != nil:
				if d := op.GetRequestDeleteRange(); bytes.Equal(d.RangeEnd, []byte{0}) {
					fromKey = append(fromKey, d)
				}
			case op.GetRequestPut() != nil:
				puts = append(puts, op.GetRequestPut().Key)
			case op.GetRequestTxn() != nil:
				walk(op.GetRequestTxn())
			}
		}
	}
	walk(r)
	changed := false
	for _, d := range fromKey {
		if slices.ContainsFunc(puts, func(k []byte) bool { return bytes.Compare(k, d.Key) >= 0 }) {
			d.RangeEnd = []byte{0xff}
			changed = true
		}
	}
	return changed
}

// TestTxnAtomicWhereEtcdPanics sends detcd alone the transaction that
// makes etcd 3.7.3 panic (see avoidEtcdGap): a delete of every key from
// k on, then a put of k with ignore_value. There is no etcd answer to
// compare with, but whatever detcd answers, a transaction is atomic: if
// it is refused, nothing of it may have been applied.
func TestTxnAtomicWhereEtcdPanics(t *testing.T) {
	addr, _ := startInProcDetcd(t, true)
	s := dial(t, "detcd", addr, func() {})
	defer s.conn.Close()
	ctx := ctxT(t, 20*time.Second)
	for _, put := range []*pb.PutRequest{
		{Key: []byte("k"), IgnoreValue: true},
		{Key: []byte("k"), Value: []byte("v2"), IgnoreLease: true},
	} {
		if _, err := s.kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		before, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
		if err != nil {
			t.Fatal(err)
		}
		txn := &pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("k"), RangeEnd: []byte{0}}}},
			{Request: &pb.RequestOp_RequestPut{RequestPut: put}},
		}}
		resp, txnErr := s.kv.Txn(ctx, txn)
		after, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s -> %v %v", brief(txn), brief(resp), txnErr)
		if txnErr != nil {
			clearIDs(before)
			clearIDs(after)
			if !proto.Equal(before, after) {
				t.Errorf("txn %s was refused (%v) but applied in part:\n  before: %s\n  after:  %s", brief(txn), txnErr, brief(before), brief(after))
			}
		}
	}
}

// InvalidTxn sends transactions etcd refuses, or that sit at the edge of
// what it accepts.
func (it *iteration) InvalidTxn(t *rapid.T) {
	put := func(k []byte) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k, Value: []byte("p")}}}
	}
	del := func(k, end []byte) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: k, RangeEnd: end}}}
	}
	get := func(k []byte) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: k}}}
	}
	nested := func(ops ...*pb.RequestOp) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: ops}}}
	}
	k := it.key(t, "key")
	a, sub := []byte(it.prefix+"a"), []byte(it.prefix+"a/1")
	r := &pb.TxnRequest{}
	switch kind := rapid.IntRange(0, 15).Draw(t, "kind"); kind {
	case 0: // the same key put twice in one branch
		r.Success = []*pb.RequestOp{put(k), put(k)}
	case 1: // a put inside a range deleted in the same branch
		r.Success = []*pb.RequestOp{del(a, prefixEnd(a)), put(sub)}
	case 2: // the same, put first
		r.Failure = []*pb.RequestOp{put(sub), del(a, prefixEnd(a))}
	case 3, 4, 5: // one op too many in success, failure or compares
		n := maxTxnOps + rapid.IntRange(0, 1).Draw(t, "extra")
		for i := range n {
			key := fmt.Appendf([]byte(it.prefix), "many/%03d", i)
			switch kind {
			case 3:
				r.Success = append(r.Success, get(key))
			case 4:
				r.Failure = append(r.Failure, put(key))
			case 5:
				r.Compare = append(r.Compare, &pb.Compare{Key: key, Target: pb.Compare_VERSION, TargetUnion: &pb.Compare_Version{}})
			}
		}
	case 6: // a nil op
		r.Success = []*pb.RequestOp{get(k), {}}
	case 7: // an empty key in a put, a range or a delete, maybe nested
		bad := []*pb.RequestOp{put(nil), get(nil), del(nil, nil)}[rapid.IntRange(0, 2).Draw(t, "which")]
		if rapid.Bool().Draw(t, "nest") {
			bad = nested(bad)
		}
		r.Success = []*pb.RequestOp{get(k), bad}
	case 8: // a put in a nested txn and in its parent
		r.Success = []*pb.RequestOp{put(k), nested(put(k))}
	case 9: // a put in a nested txn inside a range its parent deletes
		r.Success = []*pb.RequestOp{del(a, prefixEnd(a)), nested(put(sub))}
	case 10: // the same key in both branches: allowed
		r.Success, r.Failure = []*pb.RequestOp{put(k)}, []*pb.RequestOp{put(k)}
	case 11: // overlapping deletes: allowed
		r.Success = []*pb.RequestOp{del(a, prefixEnd(a)), del(sub, nil), get(a)}
	case 12: // a compare whose union does not match its target
		targets := []pb.Compare_CompareTarget{pb.Compare_VERSION, pb.Compare_CREATE, pb.Compare_MOD, pb.Compare_VALUE, pb.Compare_LEASE}
		c := it.compare(t)
		c.Target = rapid.SampledFrom(targets).Draw(t, "otherTarget")
		r.Compare = []*pb.Compare{c}
		r.Success, r.Failure = []*pb.RequestOp{get(k)}, []*pb.RequestOp{put(k)}
	case 13: // compares with enum values outside the enums
		c := it.compare(t)
		c.Result = pb.Compare_CompareResult(rapid.SampledFrom([]int32{4, -1}).Draw(t, "badResult"))
		if rapid.Bool().Draw(t, "badTarget") {
			c.Target = pb.Compare_CompareTarget(5)
		}
		r.Compare = []*pb.Compare{c}
		r.Success, r.Failure = []*pb.RequestOp{get(k)}, []*pb.RequestOp{put(k)}
	case 14: // a compare on the empty key
		r.Compare = []*pb.Compare{{Target: pb.Compare_VERSION, TargetUnion: &pb.Compare_Version{}}}
		r.Success = []*pb.RequestOp{get(k)}
	case 15: // a put with a lease that does not exist
		p := put(k)
		p.GetRequestPut().Lease = 0x1234
		r.Success = []*pb.RequestOp{p}
		r.Failure = []*pb.RequestOp{p}
	}
	avoidEtcdGap(r)
	resp, err := call(t, it.p, "Txn", r, doTxn)
	if err == nil {
		it.noteRev(resp.Header)
	}
}

// BadInput sends single requests etcd refuses.
func (it *iteration) BadInput(t *rapid.T) {
	k := it.key(t, "key")
	switch rapid.IntRange(0, 10).Draw(t, "kind") {
	case 0:
		call(t, it.p, "Put", &pb.PutRequest{Value: []byte("v")}, doPut)
	case 1:
		call(t, it.p, "Put", &pb.PutRequest{Key: k, Value: []byte("v"), IgnoreValue: true}, doPut)
	case 2:
		call(t, it.p, "Put", &pb.PutRequest{Key: k, Value: []byte("v"), Lease: 0x1234, IgnoreLease: true}, doPut)
	case 3: // a lease that was never granted
		call(t, it.p, "Put", &pb.PutRequest{Key: k, Value: []byte("v"), Lease: rapid.SampledFrom([]int64{1, 0x1234, -1}).Draw(t, "lease")}, doPut)
	case 4: // over --max-request-bytes (1.5 MiB) but under gRPC's limit
		call(t, it.p, "Put", &pb.PutRequest{Key: k, Value: bytes.Repeat([]byte("z"), 1600*1024)}, doPut)
	case 5: // over gRPC's receive limit (--max-request-bytes + 512 KiB)
		call(t, it.p, "Put", &pb.PutRequest{Key: k, Value: bytes.Repeat([]byte("z"), 2100*1024)}, doPut)
	case 6:
		call(t, it.p, "Range", &pb.RangeRequest{RangeEnd: []byte{0}}, doRange)
	case 7:
		call(t, it.p, "DeleteRange", &pb.DeleteRangeRequest{RangeEnd: []byte{0}}, doDelete)
	case 8: // ignore_value and ignore_lease on a key that may not exist
		call(t, it.p, "Put", &pb.PutRequest{Key: k, IgnoreValue: rapid.Bool().Draw(t, "iv"), IgnoreLease: true}, doPut)
	case 9: // an oversized transaction
		call(t, it.p, "Txn", &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k, Value: bytes.Repeat([]byte("z"), 1600*1024)}}}}}, doTxn)
	case 10: // an empty compaction request
		it.compact(t, &pb.CompactionRequest{})
	}
}

// Compact compacts the shared history, at revisions that succeed and at
// ones that are compacted already or in the future.
func (it *iteration) Compact(t *rapid.T) {
	p := it.p
	r := &pb.CompactionRequest{Physical: rapid.Bool().Draw(t, "physical")}
	switch rapid.IntRange(0, 5).Draw(t, "which") {
	case 0: // one this iteration produced, else the current one
		r.Revision = p.rev
		if len(it.revs) > 0 {
			r.Revision = rapid.SampledFrom(it.revs).Draw(t, "seen")
		}
	case 1:
		r.Revision = p.rev
	case 2:
		r.Revision = p.compactRev
	case 3:
		r.Revision = max(p.compactRev-1, 1)
	case 4:
		r.Revision = p.rev + 1
	case 5:
		r.Revision = -1
	}
	it.compact(t, r)
}

func (it *iteration) compact(t *rapid.T, r *pb.CompactionRequest) {
	p := it.p
	// etcd keeps a compaction's hash for HashKV only if the previous
	// compaction had finished when this one started: wait for it.
	it.settle(t)
	if _, err := call(t, p, "Compact", r, doCompact); err == nil {
		p.compactRev = max(p.compactRev, r.Revision)
		p.compacting = p.compacting || !r.Physical
	}
}

// settle waits until etcd has finished every compaction it scheduled.
// etcd compacts in the background unless asked for a physical
// compaction, and once one is done, HashKV at its revision answers with
// the hash computed while compacting (from the previous compaction
// revision on); before that, with a hash computed now. A physical
// compaction at a compacted revision fails, but only after the earlier
// compactions have finished, so it serves as a barrier.
func (it *iteration) settle(t *rapid.T) {
	if it.p.compacting {
		call(t, it.p, "Compact", &pb.CompactionRequest{Revision: it.p.compactRev, Physical: true}, doCompact)
		it.p.compacting = false
	}
}

func (it *iteration) HashKV(t *rapid.T) {
	it.settle(t)
	call(t, it.p, "HashKV", &pb.HashKVRequest{Revision: it.revision(t, "revision")}, doHashKV)
}

// TestDiff runs the differential test twice: KV compares every KV request
// and the hash of the key space after each case; HashKV also asks for
// hashes at past, compacted and odd revisions, where etcd answers from the
// hashes it stored while compacting. They are apart so that a difference
// in the one does not keep the other from running.
func TestDiff(t *testing.T) {
	t.Run("KV", func(t *testing.T) { runDiff(t, false) })
	t.Run("HashKV", func(t *testing.T) { runDiff(t, true) })
}

func runDiff(t *testing.T, hashKV bool) {
	p := newDiffPair(t)
	n := 0
	defer func() {
		// rapid ends the test with Fatal: the summary runs even then.
		t.Logf("%d iterations, servers started %d times, last revision %d; requests per method: %v", n, p.starts, p.rev, p.calls)
		for _, k := range slices.Sorted(maps.Keys(p.errs)) {
			t.Logf("  refused by etcd %5d times: %s", p.errs[k], k)
		}
		if p.firstDiff != "" {
			// rapid shows the smallest case it found, or when a replay does
			// not fail the same way, only tracebacks: this is the original.
			t.Logf("first difference found, before shrinking:\n%s", p.firstDiff)
		}
	}()
	rapid.Check(t, func(rt *rapid.T) {
		n++
		if p.failed || !p.inSync() {
			// Once a difference is found, rapid shrinks it: every test case
			// from then on starts on fresh servers, so that the smallest
			// failing sequence it reports shows everything the failure
			// needs (a case that only fails after an earlier one is then
			// reported as flaky, with the original failure). The same
			// happens when an earlier case left the two apart.
			p.close()
			p.start()
		}
		prefix := fmt.Sprintf("/diff/%05d/", n)
		if p.failed {
			// While shrinking the prefix stays the same, and as long as the
			// others: sizes can show in error messages.
			prefix = "/diff/fresh/"
		}
		it := &iteration{p: p, prefix: prefix, startRev: p.rev, hashKV: hashKV}
		rt.Logf("iteration %d, prefix %q, revision %d, compacted at %d", n, it.prefix, p.rev, p.compactRev)
		actions := map[string]func(*rapid.T){
			"Put":         it.Put,
			"Range":       it.Range,
			"RangeStream": it.RangeStream,
			"DeleteRange": it.DeleteRange,
			"Txn":         it.Txn,
			"InvalidTxn":  it.InvalidTxn,
			"BadInput":    it.BadInput,
			"Compact":     it.Compact,
		}
		if hashKV {
			actions["HashKV"] = it.HashKV
		}
		rt.Repeat(actions)
		// detcd implements etcd's HashKV algorithm: after the same
		// requests the hash of the whole key space must be the same. Once
		// etcd has finished compacting: until then its HashKV can answer
		// with an older kept hash (see settle).
		it.settle(rt)
		call(rt, p, "HashKV", &pb.HashKVRequest{}, doHashKV)
	})
	if len(p.diffs) > 0 {
		t.Errorf("%d kinds of difference:\n%s", len(p.diffs), strings.Join(p.diffs, "\n\n"))
	}
}

// TestDiffWatchFromCompactRev: a key deleted exactly at the compaction
// revision. etcd keeps that tombstone (etcd #18089), so a watch starting
// at the compaction revision still gets the DELETE; a compaction past it
// drops it. Both servers get the same requests and must answer alike:
// the watches' events (with prev_kv, which the compacted revision before
// the delete leaves out) and HashKV at and after the compaction.
func TestDiffWatchFromCompactRev(t *testing.T) {
	p := newDiffPair(t)
	sides := []*side{p.etcd, p.detcd}
	put := func(key, value string) (rev int64) {
		for _, s := range sides {
			mustDo(t, s, "put", func() error {
				r, err := s.kv.Put(ctxT(t, 20*time.Second), &pb.PutRequest{Key: []byte(key), Value: []byte(value)})
				if err == nil {
					rev = r.Header.Revision
				}
				return err
			})
		}
		return rev
	}
	put("/w/k", "1")
	var r int64 // the delete's revision
	for _, s := range sides {
		mustDo(t, s, "delete", func() error {
			d, err := s.kv.DeleteRange(ctxT(t, 20*time.Second), &pb.DeleteRangeRequest{Key: []byte("/w/k")})
			if err == nil {
				r = d.Header.Revision
			}
			return err
		})
	}
	put("/w/j", "1")
	compare := func(stage string, from int64) {
		t.Helper()
		for _, s := range sides {
			mustDo(t, s, "compact", func() error {
				_, err := s.kv.Compact(ctxT(t, 20*time.Second), &pb.CompactionRequest{Revision: from, Physical: true})
				return err
			})
		}
		watches := []*pb.WatchCreateRequest{
			{Key: []byte("/w/k"), StartRevision: from, PrevKv: true},
			{Key: []byte("/w/"), RangeEnd: []byte("/w0"), StartRevision: from},
		}
		streams := make([][]pb.Watch_WatchClient, len(watches))
		for i, w := range watches {
			for _, s := range sides {
				streams[i] = append(streams[i], openWatch(t, s, w))
			}
		}
		// Every watch ends with this put: it shows there was nothing more.
		end := put("/w/k", "end")
		for i, w := range watches {
			e := watchEventsUntil(t, p.etcd, streams[i][0], end)
			d := watchEventsUntil(t, p.detcd, streams[i][1], end)
			t.Logf("%s, watch %d from %d: etcd %s", stage, i, w.StartRevision, e)
			if e != d {
				t.Errorf("%s, watch %d from %d: etcd %s, detcd %s", stage, i, w.StartRevision, e, d)
			}
		}
		for _, rev := range []int64{from, 0} {
			e, d := hashKV(t, p.etcd, rev), hashKV(t, p.detcd, rev)
			t.Logf("%s, HashKV at %d: etcd %s", stage, rev, e)
			if e != d {
				t.Errorf("%s: HashKV at %d: etcd %s, detcd %s", stage, rev, e, d)
			}
		}
	}
	compare("compacted at the delete", r)
	compare("compacted past the delete", r+1)
}

func mustDo(t *testing.T, s *side, what string, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatalf("%s: %s: %v", s.name, what, err)
	}
}

// openWatch creates w on a new stream of s and takes the created answer.
func openWatch(t *testing.T, s *side, w *pb.WatchCreateRequest) pb.Watch_WatchClient {
	t.Helper()
	stream, err := pb.NewWatchClient(s.conn).Watch(ctxT(t, 20*time.Second))
	if err != nil {
		t.Fatalf("%s: watch: %v", s.name, err)
	}
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: w}}); err != nil {
		t.Fatalf("%s: watch create: %v", s.name, err)
	}
	if r, err := stream.Recv(); err != nil || !r.Created || r.Canceled {
		t.Fatalf("%s: watch create: %v %v", s.name, r, err)
	}
	return stream
}

// watchEventsUntil formats the events stream gets, up to the first at
// revision end or later.
func watchEventsUntil(t *testing.T, s *side, stream pb.Watch_WatchClient, end int64) string {
	t.Helper()
	var out []string
	for range 100 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: watch recv: %v (so far %v)", s.name, err, out)
		}
		if resp.Canceled {
			return fmt.Sprintf("canceled compact=%d reason=%q", resp.CompactRevision, resp.CancelReason)
		}
		for _, ev := range resp.Events {
			e := fmt.Sprintf("%s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
			if ev.PrevKv != nil {
				e += fmt.Sprintf(" (prev %s@%d)", ev.PrevKv.Value, ev.PrevKv.ModRevision)
			}
			out = append(out, e)
			if ev.Kv.ModRevision >= end {
				return strings.Join(out, ", ")
			}
		}
	}
	t.Fatalf("%s: no event at %d after 100 responses: %v", s.name, end, out)
	return ""
}

func hashKV(t *testing.T, s *side, rev int64) string {
	t.Helper()
	h, err := s.mt.HashKV(ctxT(t, 20*time.Second), &pb.HashKVRequest{Revision: rev})
	if err != nil {
		return status.Convert(err).Message()
	}
	return fmt.Sprintf("hash=%d compact=%d hash_revision=%d", h.Hash, h.CompactRevision, h.HashRevision)
}
