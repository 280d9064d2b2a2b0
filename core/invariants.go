package core

import (
	"fmt"

	"github.com/detcd/detcd/core/internal/invariants"
	"github.com/detcd/detcd/core/lease"
	"github.com/detcd/detcd/core/mvcc"
)

// deepCheckEveryReadys spaces the deep checks: each walks the whole state,
// and a simulated run makes hundreds of thousands of Readys. Every 16th
// keeps the simulator within a few times its usual speed.
const deepCheckEveryReadys = 16

// checkInvariants runs after every Ready. The cheap checks run in every
// build; the deep ones, which walk the whole state, only in builds with
// the invariants tag (the simulator's tests and CI), every
// deepCheckEveryReadys Readys. A broken invariant is
// a bug in core, never bad input: the node panics, and the simulator
// reports the panic as a failure of the seed.
func (n *Node) checkInvariants() {
	if n.failed != nil {
		return
	}
	err := n.checkCheap()
	n.readys++
	if err == nil && invariants.Enabled && n.readys%deepCheckEveryReadys == 0 {
		err = n.checkDeep()
	}
	if err != nil {
		panic(fmt.Sprintf("core: member %x: invariant broken: %v", n.cfg.ID, err))
	}
}

// checkCheap: nothing is applied before raft commits it, and a checkpoint
// never claims more than was applied.
func (n *Node) checkCheap() error {
	if commit := n.rn.BasicStatus().GetCommit(); n.st.index > commit {
		return fmt.Errorf("applied index %d past the commit index %d", n.st.index, commit)
	}
	if n.ckpt.lastIndex > n.st.index {
		return fmt.Errorf("last checkpoint at %d, past the applied index %d", n.ckpt.lastIndex, n.st.index)
	}
	return nil
}

func (n *Node) checkDeep() error {
	if err := n.kv.CheckInvariants(); err != nil {
		return err
	}
	if err := n.lessor.CheckInvariants(); err != nil {
		return err
	}
	if err := n.watch.CheckInvariants(); err != nil {
		return err
	}
	return n.checkLeasedKeys()
}

// checkLeasedKeys: the lessor's key sets and the key space agree, both
// ways: every key a lease holds exists with that lease, and every live
// key with a lease is held by it.
func (n *Node) checkLeasedKeys() error {
	held := 0
	for _, l := range n.lessor.Leases() {
		for _, k := range l.Keys() {
			rr, err := n.kv.Range([]byte(k), nil, mvcc.RangeOptions{})
			if err != nil {
				return err
			}
			if len(rr.KVs) != 1 || rr.KVs[0].Lease != int64(l.ID) {
				return fmt.Errorf("lease %x holds key %q, which the key space does not attach to it", l.ID, k)
			}
			held++
		}
	}
	var err error
	inSpace := 0
	n.kv.Leased(func(key string, id mvcc.LeaseID) {
		inSpace++
		if err == nil && n.lessor.Lookup(lease.ID(id)) == nil {
			err = fmt.Errorf("key %q is attached to lease %x, which does not exist", key, id)
		}
	})
	if err == nil && held != inSpace {
		err = fmt.Errorf("leases hold %d keys, the key space attaches %d", held, inSpace)
	}
	return err
}
