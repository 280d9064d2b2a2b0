package core

import (
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core/wal"
)

// pendingIO tracks log writes handed to the driver and not yet durable.
// Raft's AsyncStorageWrites attaches to each write the messages that must
// wait for it; they stay here until the driver reports the write durable.
type pendingIO struct {
	nextID uint64
	ops    []ioOp
	// last is the hard state most recently handed out, to tell whether a
	// new one needs an fsync (a new term or vote does, a commit does not).
	last wal.HardState
	// persistedCommit is the commit index of the newest durable hard state.
	persistedCommit uint64
}

type ioOp struct {
	id        uint64
	responses []*raftpb.Message
	commit    uint64
	// release is what an installed snapshot made redundant, once durable;
	// load is that snapshot, to decode then.
	release *Release
	load    *IncomingSnapshot
}

// append turns a MsgStorageAppend into (part of) the Ready's Persist.
func (p *pendingIO) append(n *Node, m *raftpb.Message) {
	per := n.out.Persist
	if per == nil {
		per = &Persist{}
		n.out.Persist = per
	}
	var release *Release
	var load *IncomingSnapshot
	if snap := m.GetSnapshot(); snap != nil && !raft.IsEmptySnap(snap) {
		if !n.installSnapshot(snap, per) {
			return
		}
		per.Sync = true
		index := snap.GetMetadata().GetIndex()
		release, load = &Release{WALBefore: index + 1, CheckpointsBefore: index}, n.loading
	}
	ents := m.GetEntries()
	if len(ents) > 0 {
		if err := n.storage.Append(ents); err != nil {
			n.fail(fmt.Errorf("core: append to raft storage: %w", err))
			return
		}
	}
	for _, e := range ents {
		per.Entries = append(per.Entries, wal.Entry{Term: e.GetTerm(), Index: e.GetIndex(), Type: uint8(e.GetType()), Data: e.GetData()})
	}
	op := ioOp{responses: m.GetResponses(), release: release, load: load}
	if m.Term != nil {
		hs := wal.HardState{Term: m.GetTerm(), Vote: m.GetVote(), Commit: m.GetCommit()}
		if hs.Term != p.last.Term || hs.Vote != p.last.Vote {
			per.Sync = true
		}
		p.last = hs
		per.HardState = &hs
		op.commit = hs.Commit
		n.storage.SetHardState(&raftpb.HardState{Term: &hs.Term, Vote: &hs.Vote, Commit: &hs.Commit})
	}
	if len(ents) > 0 && !n.bug(BugEntriesNoFsync) { // planted: new entries are written, not synced
		per.Sync = true
	}
	p.nextID++
	op.id = p.nextID
	per.ID = op.id
	if n.bug(BugAckBeforeFsync) {
		n.stepLocal(op.responses)
		op.responses = nil
	}
	p.ops = append(p.ops, op)
}

// persisted releases everything that waited for writes up to id.
func (p *pendingIO) persisted(n *Node, id uint64) {
	k := 0
	for k < len(p.ops) && p.ops[k].id <= id {
		op := p.ops[k]
		if op.commit > p.persistedCommit {
			p.persistedCommit = op.commit
		}
		n.stepLocal(op.responses)
		if op.release != nil {
			n.out.Release = op.release
		}
		if op.load != nil {
			n.out.Load = op.load
		}
		k++
	}
	if k == 0 && id != 0 {
		n.fail(fmt.Errorf("core: persisted write %d was not pending", id))
		return
	}
	clear(p.ops[:k])
	p.ops = p.ops[k:]
}
