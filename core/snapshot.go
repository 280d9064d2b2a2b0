package core

import (
	"fmt"
	"io"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core/lease"
	"github.com/detcd/detcd/core/mvcc"
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

// PreparedSnapshot is a state a leader streamed, decoded off the loop by
// PrepareSnapshot, so that installing it takes the loop only for the
// switch. It is immutable until the node installs it.
type PreparedSnapshot struct {
	// Index is the raft index the state is at.
	Index uint64
	// Bytes is the content's size.
	Bytes int64
	// File names the sealed checkpoint file the content was read from; the
	// node hands it back in Persist.Snapshot for the driver to install as
	// the checkpoint at Index. Core never opens it.
	File   string
	st     applied
	kv     *mvcc.Store
	lessor *lease.Lessor
}

// PrepareSnapshot decodes a snapshot's content (a checkpoint's, as
// OutgoingSnapshot.Write writes it) into a new state, for a node with
// configuration cfg (Node.Config). It is pure and touches no node, so a
// driver runs it off the loop, as long as decoding takes. content is kept,
// not copied, as the new key space's memory (that is why it is a slice and
// not a reader): the caller must not change it afterwards. file is what
// PreparedSnapshot.File will say.
func PrepareSnapshot(content []byte, cfg Config, file string) (*PreparedSnapshot, error) {
	st, kv, lessor, err := loadCheckpoint(content, cfg.lessorConfig())
	if err != nil {
		return nil, fmt.Errorf("core: snapshot from the leader: %w", err)
	}
	kv.Bug = cfg.PlantedBug
	return &PreparedSnapshot{Index: st.index, Bytes: int64(len(content)), File: file, st: st, kv: kv, lessor: lessor}, nil
}

// ReceivedSnapshot is a state from the leader that the driver must make
// durable, as the checkpoint at Index, before the write that carries it is
// reported persisted: File is the sealed checkpoint file it came from.
type ReceivedSnapshot struct {
	Index uint64
	Bytes int64
	File  string
}

func (n *Node) sendSnapshot(m *raftpb.Message) {
	index, term := n.st.index, n.st.term
	state := n.stateNow()
	m.Snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: &index, Term: &term, ConfState: n.st.confState}}
	n.log.Info("sending a snapshot", "to", fmt.Sprintf("%x", m.GetTo()), "index", index)
	n.out.Snapshots = append(n.out.Snapshots, OutgoingSnapshot{To: m.GetTo(), Index: index, Msg: m, Write: state.Write})
}

// StepSnapshot hands the node a MsgSnap with the state streamed beside it,
// prepared. A state at another index than the message's is refused with
// ErrCorrupt, before raft sees the message; one raft does not take (it is
// not ahead of the log) with ErrSnapshotRefused. Either way the driver may
// discard p.File; otherwise the next Ready's Persist.Snapshot names it.
func (n *Node) StepSnapshot(m *raftpb.Message, p *PreparedSnapshot) error {
	if m.GetType() != raftpb.MsgSnap || m.GetSnapshot() == nil {
		return fmt.Errorf("core: StepSnapshot with %s", m.GetType())
	}
	if index := m.GetSnapshot().GetMetadata().GetIndex(); p == nil || p.Index != index {
		got := uint64(0)
		if p != nil {
			got = p.Index
		}
		return fmt.Errorf("%w: snapshot content is at %d, raft's at %d", ErrCorrupt, got, index)
	}
	n.incoming = p
	if err := n.Step(m); err != nil {
		n.incoming = nil
		return err
	}
	// Raft decides at once; its decision shows in its next Ready, where an
	// accepted snapshot is installed (taking n.incoming).
	n.processRaft()
	if n.incoming != nil {
		n.incoming = nil
		return fmt.Errorf("%w: index %d", ErrSnapshotRefused, p.Index)
	}
	return nil
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

// installSnapshot replaces the state with a snapshot raft accepted: the
// state was prepared off the loop, so this is only the switch.
func (n *Node) installSnapshot(snap *raftpb.Snapshot, per *Persist) bool {
	index := snap.GetMetadata().GetIndex()
	in := n.incoming
	n.incoming = nil
	if in == nil || in.Index != index {
		n.fail(fmt.Errorf("core: raft installs snapshot %d but its content did not arrive", index))
		return false
	}
	if err := n.storage.ApplySnapshot(snap); err != nil {
		n.fail(fmt.Errorf("core: apply snapshot %d to raft storage: %w", index, err))
		return false
	}
	st, kv := in.st, in.kv
	seen := int64(n.kv.Rev())
	if n.bug(BugSnapshotKeepsMembers) {
		st.members = n.st.members // planted: the snapshot's member list is ignored
	}
	n.kv, n.st, n.lessor = kv, st, in.lessor
	n.watch.SetStore(kv, seen)
	n.ckpt.lastIndex, n.ckpt.lastSize, n.ckpt.logBytes = index, in.Bytes, 0
	per.Snapshot = &ReceivedSnapshot{Index: index, Bytes: in.Bytes, File: in.File}
	n.log.Info("installed a snapshot from the leader", "index", index, "revision", kv.Rev())
	if n.cfg.OnApply != nil {
		n.cfg.OnApply(index, st.term, nil)
	}
	return true
}
