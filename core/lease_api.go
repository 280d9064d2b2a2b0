package core

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core/lease"
)

// keepAlive renews a lease. Only the leader renews, and only once a
// ReadIndex round has confirmed it still leads (etcd's ensureLeadership):
// a deposed leader must never renew. Followers forward to the leader.
func (n *Node) keepAlive(r Request) {
	if !n.isLeader() {
		n.forwardToLeader(r)
		return
	}
	n.reads.add(n, r)
}

// timeToLive answers from the leader, which alone knows expiry.
func (n *Node) timeToLive(r Request) {
	if !n.isLeader() {
		n.forwardToLeader(r)
		return
	}
	n.reads.add(n, r)
}

// serveLease answers a keep-alive or time-to-live once the leader has
// confirmed its leadership and applied everything before it.
func (n *Node) serveLease(r Request) {
	if !n.isLeader() {
		n.forwardToLeader(r)
		return
	}
	if ka := r.LeaseKeepAlive; ka != nil {
		l := n.lessor.Lookup(lease.ID(ka.ID))
		if l == nil {
			// etcd answers a keep-alive of an unknown lease with TTL 0.
			n.respond(r.ID, &pb.LeaseKeepAliveResponse{Header: n.header(0), ID: ka.ID}, nil)
			return
		}
		if l.RemainingTTL > 0 && !n.cfg.LeaseCheckpointDisabled {
			// Clear the checkpointed TTL through raft first, or a leader
			// change would restore it and cut the renewed lease short.
			id, lid := r.ID, lease.ID(ka.ID)
			n.noteClearing(lid, 1)
			n.proposeInternal(&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{
				Checkpoints: []*pb.LeaseCheckpoint{{ID: ka.ID, Remaining_TTL: 0}},
			}}, func(_ proto.Message, err error) {
				n.noteClearing(lid, -1)
				if err != nil {
					// As etcd's Renew: no renewal without the clearing.
					// Its entry may yet commit (a timeout), but until
					// then a new leader would restart the lease from
					// the old checkpoint, short of what the answer
					// promised.
					n.respond(id, nil, err)
					return
				}
				n.renew(id, ka.ID)
			})
			return
		}
		n.renew(r.ID, ka.ID)
		return
	}
	t := r.LeaseTimeToLive
	l := n.lessor.Lookup(lease.ID(t.ID))
	if l == nil {
		// etcd answers for an unknown lease with TTL -1.
		n.respond(r.ID, &pb.LeaseTimeToLiveResponse{Header: n.header(0), ID: t.ID, TTL: -1}, nil)
		return
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: n.header(0), ID: t.ID, TTL: n.lessor.TimeToLive(l, n.ticks), GrantedTTL: l.TTL}
	if t.Keys {
		for _, k := range l.Keys() {
			resp.Keys = append(resp.Keys, []byte(k))
		}
	}
	n.respond(r.ID, resp, nil)
}

func (n *Node) renew(req RequestID, id int64) {
	hdr := n.header(0)
	ttl, err := n.lessor.Renew(lease.ID(id), n.ticks)
	switch err {
	case nil:
		n.respond(req, &pb.LeaseKeepAliveResponse{Header: hdr, ID: id, TTL: ttl}, nil)
	case lease.ErrNotFound:
		n.respond(req, &pb.LeaseKeepAliveResponse{Header: hdr, ID: id}, nil)
	default:
		n.respond(req, nil, ErrNotLeader)
	}
}

// leaseLeases lists the leases, by expiry on the leader as etcd does, by
// id elsewhere.
func (n *Node) leaseLeases(r Request) {
	resp := &pb.LeaseLeasesResponse{Header: n.header(0), Leases: []*pb.LeaseStatus{}}
	for _, l := range n.lessor.ByExpiry() {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: int64(l.ID)})
	}
	n.respond(r.ID, resp, nil)
}

// leaseTick is the leader's lease work each tick: propose revokes for
// expired leases, at the revoke rate, and checkpoints that are due.
func (n *Node) leaseTick() {
	// raft may have stepped down since the last Ready (a message from a
	// newer term, or check-quorum): n.lead lags until then. A revoke
	// proposed now would be forwarded to the new leader and end a lease
	// that it has renewed meanwhile.
	if !n.isLeader() || n.rn.BasicStatus().RaftState != raft.StateLeader {
		return
	}
	for _, id := range n.lessor.Expired(n.ticks, n.cfg.lessorConfig().RevokesPerTick) {
		n.proposeAsLeader(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: int64(id)}})
	}
	req := &pb.LeaseCheckpointRequest{}
	for _, c := range n.lessor.DueCheckpoints(n.ticks, leaseCheckpointBatchMax) {
		// A renewal's cleared checkpoint is on its way: this one, taken
		// from the expiry before the renewal, would be applied after it
		// and restore the old remaining TTL to the next leader. The
		// clearing's apply schedules the next checkpoint.
		if n.clearing[c.ID] > 0 {
			continue
		}
		req.Checkpoints = append(req.Checkpoints, &pb.LeaseCheckpoint{ID: int64(c.ID), Remaining_TTL: c.Remaining})
	}
	if len(req.Checkpoints) > 0 {
		n.proposeAsLeader(&pb.InternalRaftRequest{LeaseCheckpoint: req})
	}
}

// noteClearing counts a renewal's cleared checkpoint proposed (+1) or
// done with (-1).
func (n *Node) noteClearing(id lease.ID, d int) {
	if n.clearing == nil {
		n.clearing = map[lease.ID]int{}
	}
	if n.clearing[id] += d; n.clearing[id] <= 0 {
		delete(n.clearing, id)
	}
}

// leaseCheckpointBatchMax is etcd's checkpoints per proposal.
const leaseCheckpointBatchMax = 1000

// leadershipChanged demotes the lessor of a member that stopped leading.
func (n *Node) leadershipChanged(wasLeader bool) {
	if !n.isLeader() && wasLeader {
		n.lessor.Demote()
		// A clearing still on its way is the next leader's to apply;
		// this member takes no checkpoints until it leads again.
		n.clearing = nil
	}
}

// maybePromote promotes the lessor of the leader once it applies its
// term's first entry (raft's empty one), as etcd does: only then has it
// applied every entry of the terms before, the checkpoints that set the
// leases' remaining TTLs among them. A leader that promoted on election
// could miss a renewal's cleared checkpoint that its predecessor had
// committed but not yet told it of, and end that lease early.
func (n *Node) maybePromote(term uint64) {
	if n.isLeader() && term == n.term && !n.lessor.IsPrimary() {
		n.lessor.Promote(n.ticks, int64(n.cfg.ElectionTicks))
	}
}
