package sim

import (
	"fmt"
	"slices"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
)

type opKind uint8

// The operation kinds the workload draws, each with its own weight in the
// run's settings.
const (
	opPut opKind = iota + 1
	opGet
	opGetSerializable
	opDelete
	opCAS
	opMultiPut
	opRangeGroup
	opDeleteGroup
	opTxn
	opRangeAt
	opCompact
	opKindsEnd
)

// opRestore is no kind the workload draws: a restore of the whole
// cluster, which sets each key group to the backup's state in the
// linearizability model (checks_epoch.go).
const opRestore = opKindsEnd

var opNames = [opKindsEnd]string{opPut: "put", opGet: "get", opGetSerializable: "sget", opDelete: "del", opCAS: "cas", opMultiPut: "mput",
	opRangeGroup: "range", opDeleteGroup: "delg", opTxn: "txn", opRangeAt: "rangeat", opCompact: "compact"}

// The legal errors the checkers judge, rather than the client: a read
// below the compaction, a revision ahead of the store, ignore_value or
// ignore_lease on a missing key.
const (
	errKindCompacted   = "compacted"
	errKindFutureRev   = "future"
	errKindKeyNotFound = "keynotfound"
)

// Op is one client operation in the history: what was asked (Req, one
// key group's keys only, but for a compaction), when, and what came back
// (Resp, or a legal error in Err). Return is -1 while the outcome is
// unknown (the client timed out, or got an error that does not say
// whether the write took).
type Op struct {
	Client int
	// User is whom the client logs in as, with auth on.
	User   string
	Kind   opKind
	Group  int
	Req    core.Request
	Member int
	Call   int64
	Return int64
	// Seen is the newest revision any operation had shown when this one
	// was called: it exists on every member that applies this op.
	Seen int64
	// Epoch counts the restores of the cluster before the call
	// (restore.go); Restored, for an opRestore, is the group's state the
	// restore sets.
	Epoch    int
	Restored *groupState
	// Stream: a range sent as a RangeStream, its chunks joined.
	Stream bool

	// Outputs.
	Unknown bool
	Failed  bool   // a definite failure with no effect
	Denied  bool   // Failed for the user's permissions
	Err     string // a legal error (errKind...), judged by the checkers
	Rev     int64
	Resp    proto.Message
}

func (o *Op) isWrite() bool {
	switch o.Kind {
	case opPut, opDelete, opCAS, opMultiPut, opDeleteGroup, opTxn, opCompact:
		return true
	}
	return false
}

// linearizable reports whether porcupine's model checks the op: a
// linearizable key-value operation on the current state with an outcome
// (known, unknown, or a legal error that says something of the state).
func (o *Op) linearizable() bool {
	switch {
	case o.Failed, o.Kind == opGetSerializable, o.Kind == opRangeAt, o.Kind == opCompact:
		return false
	case o.Err != "" && o.Err != errKindKeyNotFound:
		return false
	case o.Kind == opRangeGroup && o.Req.Range.Serializable:
		return false
	case o.Req.Txn != nil && txnSerializable(o.Req.Txn):
		return false
	}
	return true
}

// txnSerializable reports whether etcd serves a transaction as a
// serializable read: every op in both branches a serializable range (so
// one with no ops at all).
func txnSerializable(t *pb.TxnRequest) bool {
	for _, o := range append(slices.Clone(t.Success), t.Failure...) {
		if r := o.GetRequestRange(); r == nil || !r.Serializable {
			return false
		}
	}
	return true
}

func (o *Op) String() string {
	if o.Kind == opRestore {
		return fmt.Sprintf("restore of group %d in epoch %d at %dus: floor %d", o.Group, o.Epoch, o.Call, o.Restored.floor)
	}
	var b strings.Builder
	kind := opNames[o.Kind]
	if o.Stream {
		kind += "-stream"
	}
	fmt.Fprintf(&b, "c%d %s %s @m%d [%d,", o.Client, kind, describeRequest(o.Req), o.Member+1, o.Call)
	if o.Unknown {
		b.WriteString("?] unknown")
		return b.String()
	}
	fmt.Fprintf(&b, "%d] rev %d", o.Return, o.Rev)
	switch {
	case o.Err != "":
		b.WriteString(" err " + o.Err)
	case o.Denied:
		b.WriteString(" denied")
	case o.Failed:
		b.WriteString(" failed")
	case o.Resp != nil:
		b.WriteString(" " + describeResponse(o.Resp))
	}
	return b.String()
}

func describeRequest(r core.Request) string {
	switch {
	case r.Put != nil:
		return describePut(r.Put)
	case r.Range != nil:
		return describeRange(r.Range)
	case r.DeleteRange != nil:
		return describeDelete(r.DeleteRange)
	case r.Txn != nil:
		return describeTxn(r.Txn)
	case r.Compaction != nil:
		return fmt.Sprintf("at %d physical=%v", r.Compaction.Revision, r.Compaction.Physical)
	}
	return "?"
}

func describeKeys(key, end []byte) string {
	if len(end) == 0 {
		return string(key)
	}
	return fmt.Sprintf("[%s,%s)", key, end)
}

func describePut(p *pb.PutRequest) string {
	s := fmt.Sprintf("%s=%s", p.Key, p.Value)
	if p.PrevKv {
		s += " prev"
	}
	if p.IgnoreValue {
		s += " ignore-value"
	}
	if p.IgnoreLease {
		s += " ignore-lease"
	}
	return s
}

func describeRange(r *pb.RangeRequest) string {
	s := describeKeys(r.Key, r.RangeEnd)
	if r.Revision != 0 {
		s += fmt.Sprintf(" at %d", r.Revision)
	}
	if r.Limit != 0 {
		s += fmt.Sprintf(" limit %d", r.Limit)
	}
	if r.SortOrder != pb.RangeRequest_NONE || r.SortTarget != pb.RangeRequest_KEY {
		s += fmt.Sprintf(" sort %s %s", r.SortTarget, r.SortOrder)
	}
	if r.CountOnly {
		s += " count-only"
	}
	if r.KeysOnly {
		s += " keys-only"
	}
	if r.Serializable {
		s += " serializable"
	}
	return s
}

func describeDelete(d *pb.DeleteRangeRequest) string {
	s := describeKeys(d.Key, d.RangeEnd)
	if d.PrevKv {
		s += " prev"
	}
	return s
}

func describeTxn(t *pb.TxnRequest) string {
	var cmps, succ, fail []string
	for _, c := range t.Compare {
		cmps = append(cmps, fmt.Sprintf("%s(%s) %s %s", c.Target, c.Key, c.Result, compareValue(c)))
	}
	for _, o := range t.Success {
		succ = append(succ, describeRequestOp(o))
	}
	for _, o := range t.Failure {
		fail = append(fail, describeRequestOp(o))
	}
	return fmt.Sprintf("if(%s) then(%s) else(%s)", strings.Join(cmps, ","), strings.Join(succ, "; "), strings.Join(fail, "; "))
}

func compareValue(c *pb.Compare) string {
	switch c.Target {
	case pb.Compare_VALUE:
		return string(c.GetValue())
	case pb.Compare_VERSION:
		return fmt.Sprint(c.GetVersion())
	case pb.Compare_CREATE:
		return fmt.Sprint(c.GetCreateRevision())
	case pb.Compare_MOD:
		return fmt.Sprint(c.GetModRevision())
	}
	return fmt.Sprint(c.GetLease())
}

func describeRequestOp(o *pb.RequestOp) string {
	switch {
	case o.GetRequestPut() != nil:
		return "put " + describePut(o.GetRequestPut())
	case o.GetRequestRange() != nil:
		return "get " + describeRange(o.GetRequestRange())
	case o.GetRequestDeleteRange() != nil:
		return "del " + describeDelete(o.GetRequestDeleteRange())
	case o.GetRequestTxn() != nil:
		return "txn " + describeTxn(o.GetRequestTxn())
	}
	return "?"
}

func describeResponse(m proto.Message) string {
	switch r := m.(type) {
	case *pb.PutResponse:
		if r.PrevKv != nil {
			return "prev " + describeKVs([]*kvpb{r.PrevKv})
		}
		return ""
	case *pb.RangeResponse:
		s := fmt.Sprintf("count %d", r.Count)
		if r.More {
			s += " more"
		}
		return s + describeKVs(r.Kvs)
	case *pb.DeleteRangeResponse:
		return fmt.Sprintf("deleted %d", r.Deleted) + describeKVs(r.PrevKvs)
	case *pb.TxnResponse:
		parts := []string{fmt.Sprintf("ok=%v", r.Succeeded)}
		for _, o := range r.Responses {
			switch {
			case o.GetResponsePut() != nil:
				parts = append(parts, "put "+describeResponse(o.GetResponsePut()))
			case o.GetResponseRange() != nil:
				parts = append(parts, "get "+describeResponse(o.GetResponseRange()))
			case o.GetResponseDeleteRange() != nil:
				parts = append(parts, "del "+describeResponse(o.GetResponseDeleteRange()))
			case o.GetResponseTxn() != nil:
				parts = append(parts, "txn("+describeResponse(o.GetResponseTxn())+")")
			}
		}
		return strings.Join(parts, " ")
	}
	return ""
}

func describeKVs(kvs []*kvpb) string {
	var b strings.Builder
	for _, k := range kvs {
		fmt.Fprintf(&b, " {%s=%s m%d c%d v%d}", k.Key, k.Value, k.ModRevision, k.CreateRevision, k.Version)
	}
	return b.String()
}
