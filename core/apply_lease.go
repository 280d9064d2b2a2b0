package core

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core/lease"
)

func (n *Node) applyLeaseGrant(r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if n.st.alarms.noSpace() {
		return nil, ErrNoSpace
	}
	l, err := n.lessor.Grant(lease.ID(r.ID), r.TTL, n.ticks)
	switch err {
	case nil:
		return &pb.LeaseGrantResponse{Header: n.header(0), ID: r.ID, TTL: l.TTL}, nil
	case lease.ErrExists:
		return nil, ErrLeaseExist
	case lease.ErrTTLTooLarge:
		return nil, ErrLeaseTTLTooLarge
	}
	return nil, ErrLeaseNotFound
}

// applyLeaseRevoke removes a lease and deletes its keys in one revision,
// so that watchers see the deletes together.
func (n *Node) applyLeaseRevoke(r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	keys, err := n.lessor.Revoke(lease.ID(r.ID))
	if err != nil {
		return nil, ErrLeaseNotFound
	}
	if len(keys) > 0 {
		tx := n.kv.Write()
		for _, k := range keys {
			tx.DeleteRange([]byte(k), nil)
		}
		n.endWrite(tx)
	}
	return &pb.LeaseRevokeResponse{Header: n.header(0)}, nil
}

func (n *Node) applyLeaseCheckpoint(r *pb.LeaseCheckpointRequest) *pb.LeaseCheckpointResponse {
	for _, c := range r.Checkpoints {
		n.lessor.Checkpoint(lease.ID(c.ID), c.Remaining_TTL, n.ticks)
	}
	return &pb.LeaseCheckpointResponse{Header: n.header(0)}
}
