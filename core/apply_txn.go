package core

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core/mvcc"
)

// applyTxn runs a transaction with etcd's semantics: every compare,
// nested ones included, is evaluated against the state before the
// transaction; the chosen branches are checked (a bad range revision, an
// unknown lease, ignore_value on a missing key) before anything is
// written, so a failing transaction changes nothing; then the ops run in
// order, each seeing the ones before it, all sharing one revision.
func (n *Node) applyTxn(rt *pb.TxnRequest, write bool) (*pb.TxnResponse, error) {
	if write && n.st.alarms.noSpace() && txnCost(rt) > 0 {
		return nil, ErrNoSpace
	}
	path := n.compareToPath(n.kv, rt)
	if _, err := n.checkTxn(rt, path); err != nil {
		return nil, err
	}
	resp, _ := newTxnResp(rt, path)
	if !write {
		if _, err := n.executeTxn(n.kv, nil, rt, path, resp); err != nil {
			return nil, err
		}
		resp.Header = n.header(int64(n.kv.Rev()))
		return resp, nil
	}
	tx := n.kv.Write()
	_, err := n.executeTxn(tx, tx, rt, path, resp)
	rev := n.endWrite(tx)
	if err != nil {
		return nil, err
	}
	resp.Header = n.header(int64(rev))
	return resp, nil
}

func (n *Node) compareToPath(rd kvReader, rt *pb.TxnRequest) []bool {
	path := []bool{n.applyCompares(rd, rt.Compare)}
	ops := rt.Success
	if !path[0] {
		ops = rt.Failure
	}
	for _, op := range ops {
		if t := op.GetRequestTxn(); t != nil {
			path = append(path, n.compareToPath(rd, t)...)
		}
	}
	return path
}

func (n *Node) applyCompares(rd kvReader, cmps []*pb.Compare) bool {
	for _, c := range cmps {
		if !n.applyCompare(rd, c) {
			return false
		}
	}
	return true
}

func (n *Node) applyCompare(rd kvReader, c *pb.Compare) bool {
	rr, err := rd.Range(c.Key, rangeEnd(c.RangeEnd), mvcc.RangeOptions{})
	if err != nil {
		return false
	}
	if len(rr.KVs) == 0 {
		if c.Target == pb.Compare_VALUE {
			// A missing key has no value to compare, as in etcd.
			return false
		}
		return n.compareKV(c, &mvccpb.KeyValue{})
	}
	for _, kv := range rr.KVs {
		if !n.compareKV(c, kv) {
			return false
		}
	}
	return true
}

func (n *Node) compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		result = compareInt64(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = compareInt64(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = compareInt64(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = compareInt64(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		if n.bug(BugCompareGreaterOrEqual) {
			return result >= 0 // planted: GREATER as at least
		}
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkTxn checks the chosen branches against the state before the
// transaction and returns how many nested transactions it walked. It walks
// the ops in the order they will run, so that a put with ignore_value or
// ignore_lease after a delete of its key in the same transaction is
// refused here, before anything is written: etcd's duplicate-key check
// lets a "\x00" range end through (and etcd itself crashes on it).
func (n *Node) checkTxn(rt *pb.TxnRequest, path []bool) (int, error) {
	var dels []*pb.DeleteRangeRequest
	return n.checkTxnOps(rt, path, &dels)
}

func (n *Node) checkTxnOps(rt *pb.TxnRequest, path []bool, dels *[]*pb.DeleteRangeRequest) (int, error) {
	count := 0
	ops := rt.Success
	if !path[0] {
		ops = rt.Failure
	}
	for _, op := range ops {
		var err error
		switch {
		case op.GetRequestRange() != nil:
			err = n.checkRangeRev(op.GetRequestRange())
		case op.GetRequestDeleteRange() != nil:
			*dels = append(*dels, op.GetRequestDeleteRange())
		case op.GetRequestPut() != nil:
			p := op.GetRequestPut()
			if err = n.checkLease(p.Lease); err == nil {
				_, err = prevKV(n.kv, p)
			}
			if err == nil && (p.IgnoreValue || p.IgnoreLease) && deletedBy(*dels, p.Key) {
				err = ErrKeyNotFound
			}
		case op.GetRequestTxn() != nil:
			var k int
			k, err = n.checkTxnOps(op.GetRequestTxn(), path[1:], dels)
			count += k + 1
			path = path[k+1:]
		}
		if err != nil {
			return 0, err
		}
	}
	return count, nil
}

// deletedBy reports whether one of the deletes covers key.
func deletedBy(dels []*pb.DeleteRangeRequest, key []byte) bool {
	k := string(key)
	for _, d := range dels {
		end := rangeEnd(d.RangeEnd)
		switch {
		case end == nil:
			if k == string(d.Key) {
				return true
			}
		case len(end) == 0:
			if k >= string(d.Key) {
				return true
			}
		case k >= string(d.Key) && k < string(end):
			return true
		}
	}
	return false
}

func (n *Node) checkRangeRev(r *pb.RangeRequest) error {
	switch {
	case r.Revision == 0:
		return nil
	case r.Revision > int64(n.kv.Rev()):
		return ErrFutureRev
	case r.Revision < int64(n.kv.CompactRev()):
		return ErrCompacted
	}
	return nil
}

// newTxnResp shapes the response after the chosen branches.
func newTxnResp(rt *pb.TxnRequest, path []bool) (*pb.TxnResponse, int) {
	ops := rt.Success
	if !path[0] {
		ops = rt.Failure
	}
	resp := &pb.TxnResponse{Succeeded: path[0], Responses: make([]*pb.ResponseOp, len(ops))}
	count := 0
	for i, op := range ops {
		switch {
		case op.GetRequestRange() != nil:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{}}
		case op.GetRequestPut() != nil:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{}}
		case op.GetRequestDeleteRange() != nil:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{}}
		case op.GetRequestTxn() != nil:
			sub, k := newTxnResp(op.GetRequestTxn(), path[1:])
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}}
			path = path[1+k:]
			count += k + 1
		default:
			resp.Responses[i] = &pb.ResponseOp{}
		}
	}
	return resp, count
}

// executeTxn runs the chosen ops; tx is nil for a read-only transaction.
// Nested responses get the headers etcd gives them: the revision only.
func (n *Node) executeTxn(rd kvReader, tx *mvcc.Txn, rt *pb.TxnRequest, path []bool, resp *pb.TxnResponse) (int, error) {
	ops := rt.Success
	if !path[0] {
		ops = rt.Failure
	}
	count := 0
	rev := func() int64 {
		if tx != nil {
			return int64(tx.Rev())
		}
		return int64(n.kv.Rev())
	}
	for i, op := range ops {
		out := resp.Responses[i].Response
		switch {
		case op.GetRequestRange() != nil:
			rr, err := executeRange(rd, op.GetRequestRange())
			if err != nil {
				return 0, err
			}
			out.(*pb.ResponseOp_ResponseRange).ResponseRange = rr
		case op.GetRequestPut() != nil:
			pr, err := n.txnPut(tx, op.GetRequestPut())
			if err != nil {
				return 0, err
			}
			pr.Header = &pb.ResponseHeader{Revision: rev()}
			out.(*pb.ResponseOp_ResponsePut).ResponsePut = pr
		case op.GetRequestDeleteRange() != nil:
			dr, err := txnDelete(tx, op.GetRequestDeleteRange())
			if err != nil {
				return 0, err
			}
			dr.Header = &pb.ResponseHeader{Revision: rev()}
			out.(*pb.ResponseOp_ResponseDeleteRange).ResponseDeleteRange = dr
		case op.GetRequestTxn() != nil:
			sub := out.(*pb.ResponseOp_ResponseTxn).ResponseTxn
			k, err := n.executeTxn(rd, tx, op.GetRequestTxn(), path[1:], sub)
			if err != nil {
				return 0, err
			}
			sub.Header = &pb.ResponseHeader{} // etcd leaves nested headers empty
			count += k + 1
			path = path[k+1:]
		}
	}
	return count, nil
}

func isTxnReadonly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, u := range ops {
			if u.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}

func isTxnSerializable(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, u := range ops {
			if rr := u.GetRequestRange(); rr == nil || !rr.Serializable {
				return false
			}
		}
	}
	return true
}
