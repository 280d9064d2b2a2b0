package core

// etcd's strict reconfiguration check (--strict-reconfig-check, on by
// default): a membership change that would leave fewer started members
// than a quorum is refused with ErrNotEnoughStarted, and one that would
// leave fewer members this member is connected to than a quorum with
// ErrUnhealthy. A member is started once it has published its name.
// Connected is etcd's transport notion, "active since": here, the member
// has heard from the peer without a gap longer than an election timeout
// for at least healthIntervalMs. Only the leader hears from every voter
// (each answers its heartbeats), so a follower checks what it can (the
// started members, the same on every member) and forwards the rest of the
// request to the leader.

// healthIntervalMs is etcd's HealthInterval: how long a peer must have
// been connected to count towards a quorum of a reconfiguration.
const healthIntervalMs = 5000

// connReadTimeoutMs is etcd's ConnReadTimeout: a peer silent for longer
// counts as disconnected (its run of contact ends), as etcd's transport
// gives up a stream that long quiet. A shorter silence, a member slowed
// by its machine, does not restart the health interval.
const connReadTimeoutMs = 5000

// sendLinkHeartbeats sends every other member a link heartbeat (a
// PeerMessage with nothing in it) every quarter of an election timeout:
// followers exchange nothing else, and a follower that becomes leader
// must know which of them it has been in contact with, as etcd's members
// know from the streams their transport keeps open to every peer.
func (n *Node) sendLinkHeartbeats() {
	if n.ticks%max(int64(n.cfg.ElectionTicks)/4, 1) != 0 {
		return
	}
	for _, m := range n.st.members.list {
		if m.ID != n.cfg.ID {
			n.out.Peer = append(n.out.Peer, &PeerMessage{From: n.cfg.ID, To: m.ID})
		}
	}
}

// peerActivity is, per peer, the tick this member last heard from it and
// the tick its current unbroken run of contact began.
type peerActivity struct {
	last, since map[uint64]int64
}

func newPeerActivity() peerActivity {
	return peerActivity{last: map[uint64]int64{}, since: map[uint64]int64{}}
}

// heard records a message from peer at tick now; a silence longer than
// gap ticks ended the previous run of contact.
func (a peerActivity) heard(peer uint64, now, gap int64) {
	if last, ok := a.last[peer]; !ok || now-last > gap {
		a.since[peer] = now
	}
	a.last[peer] = now
}

// active reports whether peer was heard from within the last gap ticks.
func (a peerActivity) active(peer uint64, now, gap int64) bool {
	last, ok := a.last[peer]
	return ok && now-last <= gap
}

// connectedFor reports whether peer has been active without a break for
// at least span ticks.
func (a peerActivity) connectedFor(peer uint64, now, gap, span int64) bool {
	return a.active(peer, now, gap) && now-a.since[peer] >= span
}

// peerHeard notes a message from a peer.
func (n *Node) peerHeard(peer uint64) {
	if peer != 0 && peer != n.cfg.ID {
		n.activity.heard(peer, n.ticks, max(int64(n.cfg.ElectionTicks), int64(connReadTimeoutMs/n.cfg.TickMs)))
	}
}

// peerActive reports whether this member hears from peer now (itself
// always).
func (n *Node) peerActive(peer uint64) bool {
	return peer == n.cfg.ID || n.activity.active(peer, n.ticks, int64(n.cfg.ElectionTicks))
}

// connectedVoters counts the voters, this member included, it has been
// connected to for etcd's health interval.
func (n *Node) connectedVoters() (voters, connected int) {
	span := int64(healthIntervalMs / n.cfg.TickMs)
	for _, m := range n.st.members.list {
		if m.IsLearner {
			continue
		}
		voters++
		if m.ID == n.cfg.ID || n.activity.connectedFor(m.ID, n.ticks, int64(n.cfg.ElectionTicks), span) {
			connected++
		}
	}
	return voters, connected
}

func quorum(voters int) int { return voters/2 + 1 }

// addStarted is the first half of etcd's check before adding a member:
// for a voter, enough started voters once it is added. It holds on any
// member.
func (n *Node) addStarted(learner bool) error {
	if learner {
		return nil
	}
	voters, started := n.st.members.started(0)
	// Adding a second member to a one-member cluster restores a backup:
	// etcd allows it.
	if !(started == 1 && voters == 1) && started < quorum(voters+1) {
		return ErrNotEnoughStarted
	}
	return nil
}

// addConnected is the second half, on the leader, for learners too: but
// in a one-member cluster, a quorum of the grown cluster connected to
// this member (the new one counted as down).
func (n *Node) addConnected() error {
	if voters, connected := n.connectedVoters(); voters != 1 && connected < quorum(voters+1) {
		return ErrUnhealthy
	}
	return nil
}

// removeVoterStarted is the first half of etcd's check before removing
// voter id: enough started voters among the rest. It holds on any member.
func (n *Node) removeVoterStarted(id uint64) error {
	if voters, started := n.st.members.started(id); started < quorum(voters) {
		return ErrNotEnoughStarted
	}
	return nil
}

// removeVoterConnected is the second half, on the leader: unless id is
// down already, a quorum of the rest still connected to this member.
func (n *Node) removeVoterConnected(id uint64) error {
	if !n.peerActive(id) {
		return nil // a member that is down is not part of the active quorum
	}
	// id is counted among the connected ones if it is, as etcd counts it.
	if voters, connected := n.connectedVoters(); connected-1 < quorum(voters-1) {
		return ErrUnhealthy
	}
	return nil
}

// mayPromote is etcd's check before promoting a learner: enough started
// voters once it votes, counting it as started.
func (n *Node) mayPromote() error {
	voters, started := n.st.members.started(0)
	if started+1 < quorum(voters+1) {
		return ErrNotEnoughStarted
	}
	return nil
}
