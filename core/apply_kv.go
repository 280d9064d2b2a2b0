package core

import (
	"errors"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/detcd/detcd/core/lease"
	"github.com/detcd/detcd/core/mvcc"
)

// kvReader is what reads inside and outside a write transaction share.
type kvReader interface {
	Range(key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error)
}

// rangeEnd turns a request's range_end into the key space's: none means
// one key, "\x00" means every key from key on.
func rangeEnd(end []byte) []byte {
	switch {
	case len(end) == 0:
		return nil
	case len(end) == 1 && end[0] == 0:
		return []byte{}
	}
	return end
}

func (n *Node) applyPut(p *pb.PutRequest) (*pb.PutResponse, error) {
	if n.st.alarms.noSpace() {
		return nil, ErrNoSpace
	}
	if err := n.checkLease(p.Lease); err != nil {
		return nil, err
	}
	tx := n.kv.Write()
	resp, err := n.txnPut(tx, p)
	rev := n.endWrite(tx)
	if err != nil {
		return nil, err
	}
	resp.Header = n.header(int64(rev))
	return resp, nil
}

// checkLease refuses a lease the member does not know.
func (n *Node) checkLease(id int64) error {
	if id != 0 && n.lessor.Lookup(lease.ID(id)) == nil {
		return ErrLeaseNotFound
	}
	return nil
}

// prevKV reads a put's key before the put when the request needs it.
func prevKV(rd kvReader, p *pb.PutRequest) (*mvccpb.KeyValue, error) {
	if !p.IgnoreValue && !p.IgnoreLease && !p.PrevKv {
		return nil, nil
	}
	rr, err := rd.Range(p.Key, nil, mvcc.RangeOptions{})
	if err != nil {
		return nil, err
	}
	var prev *mvccpb.KeyValue
	if len(rr.KVs) > 0 {
		prev = rr.KVs[0]
	}
	if (p.IgnoreValue || p.IgnoreLease) && prev == nil {
		return nil, ErrKeyNotFound
	}
	return prev, nil
}

func (n *Node) txnPut(tx *mvcc.Txn, p *pb.PutRequest) (*pb.PutResponse, error) {
	prev, err := prevKV(tx, p)
	if err != nil {
		return nil, err
	}
	value, lease := p.Value, p.Lease
	if p.IgnoreValue {
		value = prev.Value
	}
	if p.IgnoreLease {
		lease = prev.Lease
	}
	if n.bug(BugPutDivergesEvenMember) && n.cfg.ID%2 == 0 { // planted: the value is lost on even members
		value = nil
	}
	tx.Put(p.Key, value, mvcc.LeaseID(lease))
	resp := &pb.PutResponse{}
	if p.PrevKv && prev != nil {
		resp.PrevKv = prev
	}
	return resp, nil
}

func (n *Node) applyDelete(d *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	tx := n.kv.Write()
	resp, err := txnDelete(tx, d)
	rev := n.endWrite(tx)
	if err != nil {
		return nil, err
	}
	resp.Header = n.header(int64(rev))
	return resp, nil
}

func txnDelete(tx *mvcc.Txn, d *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	end := rangeEnd(d.RangeEnd)
	resp := &pb.DeleteRangeResponse{}
	if d.PrevKv {
		rr, err := tx.Range(d.Key, end, mvcc.RangeOptions{})
		if err != nil {
			return nil, err
		}
		resp.PrevKvs = rr.KVs
	}
	resp.Deleted = tx.DeleteRange(d.Key, end)
	return resp, nil
}

func (n *Node) applyCompaction(r *pb.InternalRaftRequest) (*pb.CompactionResponse, error) {
	c := r.Compaction
	id := r.GetHeader().GetID()
	resp := &pb.CompactionResponse{}
	p := n.props.byID[id]
	var onDone func()
	var w *physicalWait
	if c.Physical && p != nil {
		// Answer once the physical work is done and the compaction's hash
		// is kept, as etcd's compaction does both before it finishes.
		w = &physicalWait{rev: c.Revision}
		w.answer = func() {
			resp.Header = n.header(0)
			n.respond(p.req, resp, nil)
		}
		onDone = func() { w.kvDone = true; n.finishPhysical() }
	} else {
		onDone = n.finishPhysical // a barrier may wait for this one
	}
	// etcd hashes the key space at the compaction revision, as it stood
	// before the compaction, and keeps the last few hashes.
	snap := n.kv.Snapshot()
	if err := n.kv.Compact(mvcc.Revision(c.Revision), onDone); err != nil {
		if errors.Is(err, mvcc.ErrCompacted) && c.Physical && p != nil && n.compactionsBusy() {
			// etcd answers a physical compaction at a compacted revision
			// only once the compactions before it have finished (their
			// hashes kept): a barrier clients can wait on.
			n.physical = append(n.physical, &physicalWait{barrier: true, answer: func() { n.respond(p.req, nil, err) }})
			delete(n.props.byID, id)
			p.done = true
		}
		return nil, err
	}
	n.hashJobs++
	n.out.Hashes = append(n.out.Hashes, HashJob{Rev: c.Revision, View: snap})
	if w != nil {
		n.physical = append(n.physical, w)
		delete(n.props.byID, id)
		p.done = true
	}
	resp.Header = n.header(0)
	return resp, nil
}

// endWrite closes a write transaction, moves keys between leases and
// tells the watchers what changed.
func (n *Node) endWrite(tx *mvcc.Txn) mvcc.Revision {
	changed := len(tx.Changes()) > 0
	rev := tx.End()
	for _, c := range tx.LeaseChanges() {
		if c.Old != 0 {
			n.lessor.Detach(lease.ID(c.Old), c.Key)
		}
		if c.New != 0 && !n.bug(BugLeaseAttachLost) { // planted: the key is not put on its lease
			n.lessor.Attach(lease.ID(c.New), c.Key)
		}
	}
	if changed {
		n.watch.Notify(int64(rev), tx)
	}
	return rev
}

// physicalWait is a physical compaction's answer, waiting for the work
// and the hash.
type physicalWait struct {
	rev              int64
	kvDone, hashDone bool
	// barrier waits for every compaction before it instead.
	barrier bool
	answer  func()
}

// compactionsBusy reports whether a compaction's physical work or hash is
// still under way.
func (n *Node) compactionsBusy() bool { return n.hashJobs > 0 || n.kv.Pending() }

func (n *Node) finishPhysical() {
	keep := n.physical[:0]
	for _, w := range n.physical {
		if w.kvDone && w.hashDone || w.barrier && !n.compactionsBusy() {
			w.answer()
			continue
		}
		keep = append(keep, w)
	}
	n.physical = keep
}
