package core

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core/auth"
	"github.com/detcd/detcd/core/internal/uvar"
	"github.com/detcd/detcd/core/lease"
	"github.com/detcd/detcd/core/mvcc"
)

// checkpointer decides when to write a full-state checkpoint. A checkpoint
// dumps the whole state, so it is written only when the log since the
// last one is big enough to be worth replacing: at least
// CheckpointMinBytes and at least as big as the last checkpoint. That keeps
// both the write amplification and the replay at restart bounded.
type checkpointer struct {
	// logBytes is the entry data applied since the last checkpoint began.
	logBytes  int64
	lastIndex uint64
	lastSize  int64
	inflight  bool
	// wanted asks for a checkpoint whatever the log's size, once none is
	// in flight: a defragmentation wants the compacted state on disk.
	wanted bool
}

func (c *checkpointer) maybeStart(n *Node) {
	// A snapshot loading is the next checkpoint already.
	if c.inflight || n.failed != nil || n.loading != nil {
		return
	}
	if n.st.index <= c.lastIndex {
		c.wanted = false // the last checkpoint holds the state of now
		return
	}
	if !c.wanted && c.logBytes < max(n.cfg.CheckpointMinBytes, c.lastSize) {
		return
	}
	c.wanted = false
	n.out.Checkpoint = n.checkpointNow()
}

// checkpointNow captures the state for a checkpoint.
func (n *Node) checkpointNow() *Checkpoint {
	c := &n.ckpt
	c.inflight = true
	c.logBytes = 0
	return n.stateNow()
}

// stateNow captures the whole state, as checkpoints, snapshots to peers
// and backups hold it: a small header encoded now, and an immutable view
// of the key space written later, off the loop.
func (n *Node) stateNow() *Checkpoint {
	st := n.st
	if n.bug(BugCheckpointDropsAuth) {
		st.auth = auth.New() // planted: the checkpoint leaves out users, roles and permissions
	}
	meta := encodeMeta(&st, n.lessor.Leases())
	view := n.kv.Snapshot()
	return &Checkpoint{
		Index: n.st.index,
		meta:  meta,
		view:  view,
		Write: func(w io.Writer) error {
			if _, err := w.Write(meta); err != nil {
				return err
			}
			_, err := view.WriteTo(w)
			return err
		},
	}
}

// CheckpointDone tells the node a checkpoint is durable (err nil) or
// failed. size is its content's size.
func (n *Node) CheckpointDone(index uint64, size int64, err error) {
	c := &n.ckpt
	c.inflight = false
	if err != nil {
		n.log.Error("checkpoint failed", "index", index, "err", err)
		// Try again once as much log has piled up again.
		return
	}
	c.lastIndex, c.lastSize = index, size
	n.log.Info("checkpoint written", "index", index, "bytes", size)
	// The checkpoint replaces the log up to its index. Restart raises a
	// persisted commit index below a checkpoint's index to it, so the log
	// may go even if the hard state has not caught up yet.
	n.out.Release = &Release{WALBefore: index + 1, CheckpointsBefore: index}
}

// ForceCheckpoint asks for a checkpoint in the next Ready, whatever the
// log size: for tests.
func (n *Node) ForceCheckpoint() {
	if !n.ckpt.inflight && n.loading == nil && n.st.index > n.ckpt.lastIndex {
		n.out.Checkpoint = n.checkpointNow()
	}
}

// StopCheckpoint asks, at a clean stop, for a checkpoint of the applied
// state once none is in flight, if the log applied since the last one
// began is at least StopCheckpointMinBytes and at least as big as that
// checkpoint: a restart then loads the checkpoint instead of applying that
// log again. A checkpoint costs about as much CPU per byte to write as log
// does to apply (1 KiB puts: 3.0-3.7 s for a 1.0 GB checkpoint, 2-2.7 s
// for 0.5 GB of log), but it writes the whole state, and the state is at
// most the last checkpoint and the log together: with less log than that,
// the stop would spend more than the restart saves. After 1M puts of 1 KiB
// (a 1.0 GB state, 0.5 GB of it in the log) writing it made the stop 4.3-5.8
// s (2.7-3.7 s of CPU) and the restart 3.1-6.3 s (1.5-2.7 s); without it
// the stop takes milliseconds and the restart 3.0-10.9 s (2.5-3.2 s of
// CPU; load 4-8). Nothing is lost either way: the log is
// durable, and the node writes the checkpoint after the restart, off the
// loop, once the log reaches its usual bound (checkpointer.maybeStart).
func (n *Node) StopCheckpoint() {
	if c := &n.ckpt; c.logBytes >= max(n.cfg.StopCheckpointMinBytes, c.lastSize) {
		c.wanted = true
	}
}

// CheckpointBusy reports that a checkpoint is being written, or wanted
// and not yet started: what a stopping driver waits for.
func (n *Node) CheckpointBusy() bool {
	c := &n.ckpt
	return n.failed == nil && (c.inflight || c.wanted && n.loading == nil && n.st.index > c.lastIndex)
}

// The state besides the key space, at the head of a checkpoint:
//
//	uvarint format | uvarint index | uvarint term |
//	bytes confState | bytes members (JSON) | uvarint count, removed ids |
//	uvarint count, (uvarint member, uvarint type) alarms |
//	uvarint count, (uvarint id, uvarint ttl, uvarint remaining) leases |
//	bytes cluster version | bytes auth store (format 4 on) |
//	bytes downgrade target (format 5 on)
//
// where bytes is a uvarint length and the bytes. The key space follows;
// the keys attached to each lease are rebuilt from it.
const metaFormat = 5

// metaFormatNoAuth and metaFormatNoDowngrade are the formats before the
// auth store and before the downgrade job; they still load.
const (
	metaFormatNoAuth      = 3
	metaFormatNoDowngrade = 4
)

type checkpointMembers struct {
	Members []Member `json:"members"`
}

func encodeMeta(st *applied, ls []*lease.Lease) []byte {
	var b []byte
	b = binary.AppendUvarint(b, metaFormat)
	b = binary.AppendUvarint(b, st.index)
	b = binary.AppendUvarint(b, st.term)
	cs, err := proto.MarshalOptions{Deterministic: true}.Marshal(st.confState)
	if err != nil {
		panic("core: marshal conf state: " + err.Error())
	}
	b = uvar.AppendBytes(b, cs)
	ms, err := json.Marshal(checkpointMembers{Members: st.members.list})
	if err != nil {
		panic("core: marshal members: " + err.Error())
	}
	b = uvar.AppendBytes(b, ms)
	b = binary.AppendUvarint(b, uint64(len(st.members.removed)))
	for _, id := range st.members.removed {
		b = binary.AppendUvarint(b, id)
	}
	b = binary.AppendUvarint(b, uint64(len(st.alarms.list)))
	for _, a := range st.alarms.list {
		b = binary.AppendUvarint(b, a.MemberID)
		b = binary.AppendUvarint(b, uint64(a.Alarm))
	}
	b = binary.AppendUvarint(b, uint64(len(ls)))
	for _, l := range ls {
		b = binary.AppendUvarint(b, uint64(l.ID))
		b = binary.AppendUvarint(b, uint64(l.TTL))
		b = binary.AppendUvarint(b, uint64(l.RemainingTTL))
	}
	b = uvar.AppendBytes(b, []byte(st.clusterVersion))
	b = uvar.AppendBytes(b, st.auth.Marshal())
	return uvar.AppendBytes(b, []byte(st.downgradeTarget))
}

// loadCheckpoint restores the state a checkpoint holds. The key space
// aliases data.
func loadCheckpoint(data []byte, lc lease.Config) (applied, *mvcc.Store, *lease.Lessor, error) {
	st, ls, kvAt, err := decodeMeta(data)
	if err != nil {
		return st, nil, nil, err
	}
	lessor := lease.New(lc)
	for _, l := range ls {
		lessor.Restore(l.ID, l.TTL, l.RemainingTTL)
	}
	kv, _, err := mvcc.Load(data[kvAt:])
	if err != nil {
		return st, nil, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	kv.Leased(func(key string, id mvcc.LeaseID) { lessor.Attach(lease.ID(id), key) })
	return st, kv, lessor, nil
}

// decodeMeta reads a checkpoint's header; the key space starts at kvAt.
func decodeMeta(data []byte) (st applied, ls []*lease.Lease, kvAt int, err error) {
	d := uvar.NewReader(data, ErrCorrupt, "checkpoint header")
	format := d.Uvarint()
	if d.Err() == nil && format != metaFormat && format != metaFormatNoDowngrade && format != metaFormatNoAuth {
		return st, nil, 0, fmt.Errorf("%w: checkpoint format %d unknown", ErrCorrupt, format)
	}
	st.index = d.Uvarint()
	st.term = d.Uvarint()
	cs := d.Bytes()
	ms := d.Bytes()
	removed := d.Uvarint()
	for i := uint64(0); i < removed && d.Err() == nil; i++ {
		st.members.removed = append(st.members.removed, d.Uvarint())
	}
	nAlarms := d.Uvarint()
	for i := uint64(0); i < nAlarms && d.Err() == nil; i++ {
		st.alarms.activate(d.Uvarint(), pb.AlarmType(d.Uvarint()))
	}
	nLeases := d.Uvarint()
	for i := uint64(0); i < nLeases && d.Err() == nil; i++ {
		id, ttl, remaining := d.Uvarint(), d.Uvarint(), d.Uvarint()
		ls = append(ls, &lease.Lease{ID: lease.ID(id), TTL: int64(ttl), RemainingTTL: int64(remaining)})
	}
	st.clusterVersion = string(d.Bytes())
	st.auth = auth.New()
	if format >= metaFormatNoDowngrade {
		a := d.Bytes()
		if d.Err() == nil {
			if st.auth, err = auth.Unmarshal(a); err != nil {
				return st, nil, 0, fmt.Errorf("%w: checkpoint auth store: %v", ErrCorrupt, err)
			}
		}
	}
	if format >= metaFormat {
		st.downgradeTarget = string(d.Bytes())
	}
	if d.Err() != nil {
		return st, nil, 0, d.Err()
	}
	st.confState = &raftpb.ConfState{}
	if err := proto.Unmarshal(cs, st.confState); err != nil {
		return st, nil, 0, fmt.Errorf("%w: checkpoint conf state: %v", ErrCorrupt, err)
	}
	var cm checkpointMembers
	if err := json.Unmarshal(ms, &cm); err != nil {
		return st, nil, 0, fmt.Errorf("%w: checkpoint members: %v", ErrCorrupt, err)
	}
	st.members.list = cm.Members
	return st, ls, d.Offset(), nil
}
