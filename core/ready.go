package core

import (
	"io"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/core/watch"
)

// Ready is everything a driver must carry out after feeding the node. The
// driver may carry out its parts in any order: whatever must wait for a
// write is held back inside the node until the driver reports the write
// durable.
type Ready struct {
	// Persist is a write to the log. The driver writes it after every
	// earlier Persist, fsyncs if Sync is set, and then calls
	// Node.Persisted(Persist.ID).
	Persist *Persist
	// Messages go to peers now.
	Messages []*raftpb.Message
	// Snapshots go to peers that fell behind the log.
	Snapshots []OutgoingSnapshot
	// Peer are member-to-member messages outside raft (forwarded lease
	// requests and their answers), to send now.
	Peer []*PeerMessage
	// Responses go to clients now.
	Responses []Response
	// Watch responses go to their watch streams now; the driver gives each
	// one's Bytes back with WatchCredit once it is sent.
	Watch []watch.Out
	// Checkpoint is a full-state checkpoint to write off the loop; the
	// driver calls Node.CheckpointDone when it is durable (or failed).
	Checkpoint *Checkpoint
	// Release lists files made redundant by a durable checkpoint.
	Release *Release
	// Load is a snapshot from the leader, now durable as the checkpoint at
	// its index: the driver decodes it off the loop (Prepare) and hands
	// the result to Node.SnapshotPrepared.
	Load *IncomingSnapshot
	// Hashes are key-space hashes to compute off the loop, at each
	// compaction, as etcd stores them for its corruption checks: the
	// driver calls Node.CompactionHash with each result.
	Hashes []HashJob
	// More reports background work (physical compaction, watchers
	// catching up): the driver should call Node.StepBackground and then
	// Ready again soon even if nothing else happens.
	More bool
}

// Persist is one write to the log, in the WAL's terms.
type Persist struct {
	ID        uint64
	HardState *wal.HardState
	Entries   []wal.Entry
	// Sync is set when the write must be fsynced before Persisted:
	// entries, or a new term or vote.
	Sync bool
	// Snapshot is a state from the leader, to be written durably as the
	// checkpoint at its index before the log records. It implies Sync.
	Snapshot *ReceivedSnapshot
}

// Checkpoint is a full-state checkpoint at Index.
type Checkpoint struct {
	Index uint64
	// Write writes the checkpoint content. It reads only immutable state,
	// so it may run on any goroutine.
	Write func(w io.Writer) error
	// meta and view are the state Write writes, for Export.
	meta []byte
	view *mvcc.View
}

// Release names what a durable checkpoint makes redundant.
type Release struct {
	// WALBefore: log segments whose entries are all below this index may go.
	WALBefore uint64
	// CheckpointsBefore: checkpoints at lower indexes may go.
	CheckpointsBefore uint64
}

// IsEmpty reports whether the Ready holds nothing to do.
func (rd *Ready) IsEmpty() bool {
	return rd.Persist == nil && len(rd.Hashes) == 0 && len(rd.Messages) == 0 && len(rd.Responses) == 0 && len(rd.Snapshots) == 0 && len(rd.Watch) == 0 && len(rd.Peer) == 0 &&
		rd.Checkpoint == nil && rd.Release == nil && rd.Load == nil && !rd.More
}

// HashJob is a hash of the key space at Rev to compute from View.
type HashJob struct {
	Rev  int64
	View *mvcc.View
}
