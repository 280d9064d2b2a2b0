package core

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// validate checks a request the way etcd's gRPC layer does, before it
// reaches raft or the key space, and returns the same errors in the same
// order.
func (n *Node) validate(r *Request) error { return Validate(r, n.cfg.MaxTxnOps) }

// Validate is the check Node.Request makes, for drivers that serve some
// requests without the node (reads from views).
func Validate(r *Request, maxTxnOps int) error {
	switch {
	case r.Range != nil:
		return checkRange(r.Range)
	case r.Put != nil:
		return checkPut(r.Put)
	case r.DeleteRange != nil:
		return checkDelete(r.DeleteRange)
	case r.Txn != nil:
		if err := checkTxn(r.Txn, maxTxnOps); err != nil {
			return err
		}
		if _, _, err := checkIntervals(r.Txn.Success); err != nil {
			return err
		}
		_, _, err := checkIntervals(r.Txn.Failure)
		return err
	}
	return nil
}

func checkRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return ErrEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return ErrInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return ErrInvalidSortOption
	}
	return nil
}

func checkPut(r *pb.PutRequest) error {
	switch {
	case len(r.Key) == 0:
		return ErrEmptyKey
	case r.IgnoreValue && len(r.Value) != 0:
		return ErrValueProvided
	case r.IgnoreLease && r.Lease != 0:
		return ErrLeaseProvided
	}
	return nil
}

func checkDelete(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return ErrEmptyKey
	}
	return nil
}

// checkTxn mirrors etcd: the op budget shrinks for nested transactions by
// the widest list of the enclosing one.
func checkTxn(r *pb.TxnRequest, maxTxnOps int) error {
	opc := max(len(r.Compare), len(r.Success), len(r.Failure))
	if opc > maxTxnOps {
		return ErrTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return ErrEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, u := range ops {
			if err := checkRequestOp(u, maxTxnOps-opc); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkRequestOp(u *pb.RequestOp, maxTxnOps int) error {
	switch uv := u.GetRequest().(type) {
	case *pb.RequestOp_RequestRange:
		return checkRange(uv.RequestRange)
	case *pb.RequestOp_RequestPut:
		return checkPut(uv.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return checkDelete(uv.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return checkTxn(uv.RequestTxn, maxTxnOps)
	}
	return ErrKeyNotFound
}

// interval is a deleted key range [begin, end) as etcd's interval tree
// sees it: an end below its begin holds nothing.
type interval struct{ begin, end string }

type intervals []interval

func (ivs intervals) holds(k string) bool {
	for _, iv := range ivs {
		if iv.begin <= k && k < iv.end {
			return true
		}
	}
	return false
}

// checkIntervals finds keys put twice, or put and deleted, in one
// transaction, including its nested ones, with etcd's rules: a nested
// transaction's two branches may put the same key, since only one runs.
func checkIntervals(reqs []*pb.RequestOp) (map[string]struct{}, intervals, error) {
	var dels intervals
	for _, req := range reqs {
		d := req.GetRequestDeleteRange()
		if d == nil {
			continue
		}
		if len(d.RangeEnd) != 0 {
			dels = append(dels, interval{string(d.Key), string(d.RangeEnd)})
		} else {
			dels = append(dels, interval{string(d.Key), string(d.Key) + "\x00"})
		}
	}
	puts := map[string]struct{}{}
	for _, req := range reqs {
		t := req.GetRequestTxn()
		if t == nil {
			continue
		}
		putsThen, delsThen, err := checkIntervals(t.Success)
		if err != nil {
			return nil, nil, err
		}
		putsElse, delsElse, err := checkIntervals(t.Failure)
		if err != nil {
			return nil, nil, err
		}
		for k := range putsThen { //core:maporder-ok: any order finds the same error
			if _, ok := puts[k]; ok || dels.holds(k) {
				return nil, nil, ErrDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse { //core:maporder-ok: any order finds the same error
			if _, ok := puts[k]; ok {
				if _, safe := putsThen[k]; !safe {
					return nil, nil, ErrDuplicateKey
				}
			}
			if dels.holds(k) {
				return nil, nil, ErrDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, req := range reqs {
		p := req.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.Key)
		if _, ok := puts[k]; ok || dels.holds(k) {
			return nil, nil, ErrDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}
