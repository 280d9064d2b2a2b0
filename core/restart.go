package core

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core/auth"
	"github.com/detcd/detcd/core/lease"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/wal"
)

// Disk is what a member's disk holds at restart.
type Disk struct {
	// Checkpoint is the newest checkpoint, decoded by LoadCheckpoint; nil
	// if there is none.
	Checkpoint *LoadedCheckpoint
	// HardState and Entries are the log after the checkpoint.
	HardState wal.HardState
	Entries   []wal.Entry
}

// LoadedCheckpoint is a checkpoint's content decoded for one Restart,
// which takes it over. Its key space aliases the content.
type LoadedCheckpoint struct {
	st     applied
	kv     *mvcc.Store
	lessor *lease.Lessor
	bytes  int64
	taken  bool
}

// LoadCheckpoint decodes a checkpoint's content for Restart. It reads
// data alone and shares nothing, so a caller may run it on a goroutine of
// its own while it reads the log after the checkpoint: a restart's two
// long passes, about a second each per half GiB, then overlap.
func LoadCheckpoint(cfg Config, data []byte) (*LoadedCheckpoint, error) {
	st, kv, lessor, err := loadCheckpoint(data, cfg.WithDefaults().lessorConfig())
	if err != nil {
		return nil, err
	}
	return &LoadedCheckpoint{st: st, kv: kv, lessor: lessor, bytes: int64(len(data))}, nil
}

// Restart rebuilds a member from its disk. Committed entries after the
// checkpoint are applied here directly (up to the first membership change,
// which raft must see), so a restart costs one pass over the log and keeps
// only etcd's catch-up window of entries in memory. It takes d.Entries
// over: an entry applied and outside that window is cleared as soon as it
// is applied, so that the log's buffers are freed while the key space
// grows, and a restart's heap peaks near the store's size, not near the
// store and the log together (gigabytes on a store of large values).
func Restart(cfg Config, d Disk) (*Node, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st := applied{confState: &raftpb.ConfState{}, auth: auth.New()}
	kv := mvcc.New()
	var lessor *lease.Lessor
	var ckptBytes int64
	if c := d.Checkpoint; c != nil {
		if c.taken {
			return nil, errors.New("core: restart from a loaded checkpoint that a restart already took")
		}
		c.taken = true
		st, kv, lessor, ckptBytes = c.st, c.kv, c.lessor, c.bytes
	}
	n := newNode(cfg, kv, raft.NewMemoryStorage())
	n.st = st
	if lessor != nil {
		n.lessor = lessor
	}
	ckptIndex, ckptTerm := st.index, st.term
	hs := d.HardState
	// A checkpoint proves its entries committed even if the hard state
	// written with them was lost: raft refuses an applied index past commit.
	hs.Commit = max(hs.Commit, ckptIndex)
	ents := d.Entries
	if len(ents) > 0 && ents[0].Index != ckptIndex+1 {
		return nil, fmt.Errorf("%w: log starts at %d, checkpoint is at %d", ErrCorrupt, ents[0].Index, ckptIndex)
	}
	// A commit index past the log means committed entries are gone (raft
	// would panic on it): refuse, as for any other loss.
	lastIndex := ckptIndex
	if len(ents) > 0 {
		lastIndex = ents[len(ents)-1].Index
	}
	if hs.Commit > lastIndex {
		return nil, fmt.Errorf("%w: the hard state commits index %d, but the checkpoint and the log end at %d", ErrCorrupt, hs.Commit, lastIndex)
	}
	for i := range ents {
		e := ents[i]
		if e.Index > hs.Commit && !n.bug(BugRestartAppliesUncommitted) || raftpb.EntryType(e.Type) != raftpb.EntryNormal { // planted: replays entries past the commit index
			break
		}
		if len(e.Data) > 0 {
			n.applyNormal(&raftpb.Entry{Index: &e.Index, Term: &e.Term, Data: e.Data})
			if n.failed != nil {
				return nil, n.failed
			}
		}
		n.st.index, n.st.term = e.Index, e.Term
		n.ckpt.logBytes += int64(len(e.Data))
		if cfg.OnApply != nil {
			cfg.OnApply(e.Index, e.Term, e.Data)
		}
		// The entry the catch-up window has just left is raft's no more
		// (the log is contiguous from the checkpoint on).
		if c := cfg.SnapshotCatchUpEntries; uint64(i) >= c {
			ents[uint64(i)-c].Data = nil
		}
	}
	// Keep the catch-up window (and everything not yet applied) for raft.
	snapIndex, snapTerm := ckptIndex, ckptTerm
	if n.st.index > ckptIndex+cfg.SnapshotCatchUpEntries {
		snapIndex = n.st.index - cfg.SnapshotCatchUpEntries
		snapTerm = ents[snapIndex-ckptIndex-1].Term
	}
	if snapIndex > 0 {
		snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: &snapIndex, Term: &snapTerm, ConfState: n.st.confState}}
		if err := n.storage.ApplySnapshot(snap); err != nil {
			return nil, fmt.Errorf("core: restore raft log: %w", err)
		}
	}
	keep := make([]*raftpb.Entry, 0, len(ents))
	for i := range ents {
		if e := ents[i]; e.Index > snapIndex {
			t := raftpb.EntryType(e.Type)
			keep = append(keep, &raftpb.Entry{Term: &ents[i].Term, Index: &ents[i].Index, Type: &t, Data: e.Data})
		}
	}
	if err := n.storage.Append(keep); err != nil {
		return nil, fmt.Errorf("core: restore raft log: %w", err)
	}
	if err := n.storage.SetHardState(&raftpb.HardState{Term: &hs.Term, Vote: &hs.Vote, Commit: &hs.Commit}); err != nil {
		return nil, fmt.Errorf("core: restore hard state: %w", err)
	}
	if err := n.startRaft(n.st.index); err != nil {
		return nil, err
	}
	n.io.last, n.io.persistedCommit = hs, hs.Commit
	n.reads.catchUp = hs.Commit
	n.term = hs.Term
	n.ckpt.lastIndex, n.ckpt.lastSize = ckptIndex, ckptBytes
	n.campaignIfAlone()
	return n, nil
}

// campaignIfAlone starts an election at once when this member is the only
// voter: nobody else can win, so waiting out an election timeout would
// only delay the first request after a start. Raft refuses to campaign
// with configuration changes still to apply, so the node tries again after
// each apply until it has tried once with none pending.
func (n *Node) campaignIfAlone() {
	n.campaignPending = true
	n.maybeCampaign()
}

func (n *Node) maybeCampaign() {
	if !n.campaignPending {
		return
	}
	voters := n.st.confState.GetVoters()
	if len(voters) == 0 || n.st.index < n.rn.BasicStatus().GetCommit() {
		return // still applying the configuration
	}
	if len(voters) != 1 || voters[0] != n.cfg.ID {
		n.campaignPending = false
		return
	}
	n.campaignPending = false
	if err := n.rn.Campaign(); err != nil {
		n.log.Warn("campaign", "err", err)
	}
}
