package core

import (
	"errors"
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

// A snapshot from the leader is taken in two steps, so that a large one
// never holds up the cluster: once its file is durable the member answers
// raft for it (a voter then counts toward the quorum for the entries
// after it at once, as etcd's does), and only then is its content
// decoded into a new state, off the loop, while the member keeps its old
// state. The entries committed meanwhile wait, in raft's log, to be
// applied on top of the new state; reads wait for them as for any apply.

// IncomingSnapshot is a snapshot the leader streamed, its file sealed and
// the head of its content checked by CheckSnapshot, not yet decoded.
type IncomingSnapshot struct {
	// Index is the raft index the state is at.
	Index uint64
	// Bytes is the content's size.
	Bytes int64
	// File names the sealed checkpoint file the content is in; the node
	// hands it back in Persist.Snapshot for the driver to install as the
	// checkpoint at Index. Core never opens it.
	File string
}

// CheckSnapshot checks the head of a snapshot's content (a checkpoint's,
// as OutgoingSnapshot.Write writes it), bytes long in all: its header
// decodes, and so does the key space's, and if head is the whole content
// the key space's records are framed right. It reads no more than head,
// so a driver checks a large snapshot without reading it back from disk;
// what it does not check, PrepareSnapshot does. A head that ends inside
// the header fails with ErrSnapshotHeadShort. It is pure, so a driver runs
// it off the loop. file is what IncomingSnapshot.File will say.
func CheckSnapshot(head []byte, bytes int64, file string) (*IncomingSnapshot, error) {
	whole := int64(len(head)) == bytes
	st, _, kvAt, err := decodeMeta(head)
	if err == nil {
		if whole {
			err = mvcc.CheckFraming(head[kvAt:])
		} else {
			err = mvcc.CheckHeader(head[kvAt:])
		}
	}
	switch {
	case err != nil && !whole:
		return nil, fmt.Errorf("%w (%d of %d bytes): %v", ErrSnapshotHeadShort, len(head), bytes, err)
	case err != nil:
		return nil, fmt.Errorf("core: snapshot from the leader: %w", errors.Join(ErrCorrupt, err))
	}
	return &IncomingSnapshot{Index: st.index, Bytes: bytes, File: file}, nil
}

// PreparedSnapshot is a state a leader streamed, decoded off the loop by
// PrepareSnapshot, so that switching to it takes the loop only for the
// switch. It is immutable until the node takes it.
type PreparedSnapshot struct {
	index  uint64
	st     applied
	kv     *mvcc.Store
	lessor *lease.Lessor
}

// PrepareSnapshot decodes the content of the snapshot in (read back from
// the checkpoint it became) into a new state, for a node with
// configuration cfg (Node.Config). It is pure and touches no node, so a
// driver runs it off the loop, as long as decoding takes. content is kept,
// not copied, as the new key space's memory: the caller must not change
// it afterwards.
func PrepareSnapshot(in *IncomingSnapshot, content []byte, cfg Config) (*PreparedSnapshot, error) {
	_, _, kvAt, err := decodeMeta(content)
	if err == nil {
		err = mvcc.CheckFraming(content[kvAt:])
	}
	if err != nil {
		return nil, fmt.Errorf("core: snapshot %d from the leader: %w", in.Index, errors.Join(ErrCorrupt, err))
	}
	st, kv, lessor, err := loadCheckpoint(content, cfg.lessorConfig())
	if err != nil {
		return nil, fmt.Errorf("core: snapshot %d from the leader: %w", in.Index, err)
	}
	kv.Bug = cfg.PlantedBug
	return &PreparedSnapshot{index: st.index, st: st, kv: kv, lessor: lessor}, nil
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
	if n.loading != nil {
		// A leader elected while it loads a snapshot has no state of its
		// own to send yet: raft probes again later.
		n.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
		return
	}
	index, term := n.st.index, n.st.term
	state := n.stateNow()
	m.Snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: &index, Term: &term, ConfState: n.st.confState}}
	n.log.Info("sending a snapshot", "to", fmt.Sprintf("%x", m.GetTo()), "index", index)
	n.out.Snapshots = append(n.out.Snapshots, OutgoingSnapshot{To: m.GetTo(), Index: index, Msg: m, Write: state.Write})
}

// StepSnapshot hands the node a MsgSnap with the content streamed beside
// it, checked. Content at another index than the message's is refused
// with ErrCorrupt, before raft sees the message; a snapshot raft does not
// take (it is not ahead of the log), or one that comes while the last is
// still loading, with ErrSnapshotRefused. Either way the driver may
// discard in.File; otherwise the next Ready's Persist.Snapshot names it,
// and once that write is durable a Ready's Load hands the content back to
// decode.
func (n *Node) StepSnapshot(m *raftpb.Message, in *IncomingSnapshot) error {
	if m.GetType() != raftpb.MsgSnap || m.GetSnapshot() == nil {
		return fmt.Errorf("core: StepSnapshot with %s", m.GetType())
	}
	if index := m.GetSnapshot().GetMetadata().GetIndex(); in == nil || in.Index != index {
		got := uint64(0)
		if in != nil {
			got = in.Index
		}
		return fmt.Errorf("%w: snapshot content is at %d, raft's at %d", ErrCorrupt, got, index)
	}
	if n.loading != nil {
		return fmt.Errorf("%w: index %d, while snapshot %d loads", ErrSnapshotRefused, in.Index, n.loading.Index)
	}
	n.incoming = in
	if err := n.Step(m); err != nil {
		n.incoming = nil
		return err
	}
	// Raft decides at once; its decision shows in its next Ready, where an
	// accepted snapshot is installed (taking n.incoming).
	n.processRaft()
	if n.incoming != nil {
		n.incoming = nil
		return fmt.Errorf("%w: index %d", ErrSnapshotRefused, in.Index)
	}
	return nil
}

// SnapshotPrepared hands the node the state Ready.Load asked for,
// decoded (or why it could not be): the node switches to it and applies
// the entries committed since. Content that matched the leader's sum and
// whose head checked, but that does not decode, leaves the member without
// a state to apply to: it fails, as etcd's does on a database it cannot
// open.
func (n *Node) SnapshotPrepared(p *PreparedSnapshot, err error) {
	in := n.loading
	switch {
	case in == nil:
		err = fmt.Errorf("core: a snapshot was prepared while none was loading")
	case err == nil && p.index != in.Index:
		err = fmt.Errorf("%w: snapshot content is at %d, the one loading at %d", ErrCorrupt, p.index, in.Index)
	}
	if err != nil {
		n.fail(err)
		return
	}
	n.loading = nil
	n.switchState(in, p)
	held := n.heldApply
	n.heldApply = nil
	for _, m := range held {
		n.applyMsg(m)
	}
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

// installSnapshot takes a snapshot raft accepted into raft's storage and
// the write per, and holds the apply of what comes after it until its
// content is decoded (SnapshotPrepared): raft answers the leader for it
// as soon as per is durable.
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
	n.loading = in
	per.Snapshot = &ReceivedSnapshot{Index: index, Bytes: in.Bytes, File: in.File}
	n.log.Info("took a snapshot from the leader; loading it", "index", index, "bytes", in.Bytes)
	return true
}

// switchState replaces the state with a snapshot's, decoded.
func (n *Node) switchState(in *IncomingSnapshot, p *PreparedSnapshot) {
	st, kv := p.st, p.kv
	seen := int64(n.kv.Rev())
	if n.bug(BugSnapshotKeepsMembers) {
		st.members = n.st.members // planted: the snapshot's member list is ignored
	}
	// The membership's version counts changes for drivers, which compare
	// it with the last they saw: the snapshot's own count (from its
	// decoding) may equal the one it replaces with other members in it.
	st.members.version = n.st.members.version + 1
	n.kv, n.st, n.lessor = kv, st, p.lessor
	n.watch.SetStore(kv, seen)
	n.ckpt.lastIndex, n.ckpt.lastSize, n.ckpt.logBytes = in.Index, in.Bytes, 0
	n.log.Info("installed a snapshot from the leader", "index", in.Index, "revision", kv.Rev())
	if n.cfg.OnApply != nil {
		n.cfg.OnApply(in.Index, st.term, nil)
	}
}
