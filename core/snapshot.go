package core

import (
	"fmt"
	"io"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// A member that fell behind the leader's compacted log gets the state as
// a checkpoint streamed beside raft's MsgSnap, as etcd streams its
// database. Raft picks the snapshot it wants to send; the leader replaces
// it with one at its current applied index (what etcd calls a merged
// snapshot), whose content is written from an immutable view off the loop.

// OutgoingSnapshot is a state transfer to a peer. The driver sends Msg
// together with the content Write produces, then calls ReportSnapshot.
type OutgoingSnapshot struct {
	To    uint64
	Index uint64
	Msg   *raftpb.Message
	Write func(w io.Writer) error
}

// ReceivedSnapshot is a state from the leader that the driver must make
// durable, as the checkpoint at Index, before the write that carries it is
// reported persisted.
type ReceivedSnapshot struct {
	Index   uint64
	Content []byte
}

func (n *Node) sendSnapshot(m *raftpb.Message) {
	index, term := n.st.index, n.st.term
	state := n.stateNow()
	m.Snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: &index, Term: &term, ConfState: n.st.confState}}
	n.log.Info("sending a snapshot", "to", fmt.Sprintf("%x", m.GetTo()), "index", index)
	n.out.Snapshots = append(n.out.Snapshots, OutgoingSnapshot{To: m.GetTo(), Index: index, Msg: m, Write: state.Write})
}

// StepSnapshot hands the node a MsgSnap with the state streamed beside it.
func (n *Node) StepSnapshot(m *raftpb.Message, content []byte) error {
	if m.GetType() != raftpb.MsgSnap || m.GetSnapshot() == nil {
		return fmt.Errorf("core: StepSnapshot with %s", m.GetType())
	}
	n.incoming = &ReceivedSnapshot{Index: m.GetSnapshot().GetMetadata().GetIndex(), Content: content}
	return n.Step(m)
}

// ReportSnapshot tells raft whether a snapshot reached its peer.
func (n *Node) ReportSnapshot(to uint64, ok bool) {
	status := raft.SnapshotFinish
	if !ok {
		status = raft.SnapshotFailure
	}
	n.rn.ReportSnapshot(to, status)
}

// ReportUnreachable tells raft a message to a peer could not be sent.
func (n *Node) ReportUnreachable(to uint64) { n.rn.ReportUnreachable(to) }

// installSnapshot replaces the state with a snapshot raft accepted.
func (n *Node) installSnapshot(snap *raftpb.Snapshot, per *Persist) bool {
	index := snap.GetMetadata().GetIndex()
	in := n.incoming
	n.incoming = nil
	if in == nil || in.Index != index {
		n.fail(fmt.Errorf("core: raft installs snapshot %d but its content did not arrive", index))
		return false
	}
	st, kv, lessor, err := loadCheckpoint(in.Content, n.cfg.lessorConfig())
	if err != nil {
		n.fail(fmt.Errorf("core: snapshot %d from the leader: %w", index, err))
		return false
	}
	if st.index != index {
		n.fail(fmt.Errorf("%w: snapshot content is at %d, raft's at %d", ErrCorrupt, st.index, index))
		return false
	}
	if err := n.storage.ApplySnapshot(snap); err != nil {
		n.fail(fmt.Errorf("core: apply snapshot %d to raft storage: %w", index, err))
		return false
	}
	seen := int64(n.kv.Rev())
	kv.Bug = n.cfg.PlantedBug
	if n.bug(BugSnapshotKeepsMembers) {
		st.members = n.st.members // planted: the snapshot's member list is ignored
	}
	n.kv, n.st, n.lessor = kv, st, lessor
	n.watch.SetStore(kv, seen)
	n.ckpt.lastIndex, n.ckpt.lastSize, n.ckpt.logBytes = index, int64(len(in.Content)), 0
	per.Snapshot = in
	n.log.Info("installed a snapshot from the leader", "index", index, "revision", kv.Rev())
	if n.cfg.OnApply != nil {
		n.cfg.OnApply(index, st.term, nil)
	}
	return true
}
