package driver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/disk"
)

// A snapshot from the leader goes to disk as it arrives, never whole in
// memory: the runtime's receiver (the server's peer stream, the
// simulator's network) writes the content through a SnapshotReceiver into
// a temporary checkpoint file, checking it against the SnapshotSum the
// leader sends after it, and hands the sealed file to StepSnapshot. A job
// off the loop checks the head of the content the receiver kept
// (core.CheckSnapshot); the node takes it on the loop, and the file
// becomes the checkpoint at its index by a rename, after which the member
// answers raft for it. Another job then reads it back and decodes it
// (core.PrepareSnapshot), and the node switches to the new state on the
// loop (Node.SnapshotPrepared).

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SnapshotSumBytes is the size of a marshaled SnapshotSum.
const SnapshotSumBytes = 8 + 4

// SnapshotSum is what a leader sends after a snapshot's content: its
// length and CRC-32C, so that the receiver refuses a torn or damaged
// transfer.
type SnapshotSum struct {
	Bytes int64
	CRC   uint32
}

// Marshal encodes the sum: u64 length, u32 crc, little-endian.
func (s SnapshotSum) Marshal() []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(s.Bytes))
	return binary.LittleEndian.AppendUint32(b, s.CRC)
}

// ParseSnapshotSum decodes a marshaled SnapshotSum.
func ParseSnapshotSum(b []byte) (SnapshotSum, error) {
	if len(b) != SnapshotSumBytes {
		return SnapshotSum{}, fmt.Errorf("driver: snapshot sum of %d bytes, want %d", len(b), SnapshotSumBytes)
	}
	return SnapshotSum{Bytes: int64(binary.LittleEndian.Uint64(b)), CRC: binary.LittleEndian.Uint32(b[8:])}, nil
}

// SnapshotSummer passes a snapshot's content through to W and sums it:
// the sending side's half of SnapshotSum.
type SnapshotSummer struct {
	W   io.Writer
	sum SnapshotSum
}

func (s *SnapshotSummer) Write(p []byte) (int, error) {
	n, err := s.W.Write(p)
	s.sum.Bytes += int64(n)
	s.sum.CRC = crc32.Update(s.sum.CRC, castagnoli, p[:n])
	return n, err
}

// Sum is the sum of what was written.
func (s *SnapshotSummer) Sum() SnapshotSum { return s.sum }

// SnapshotReceiver writes a snapshot's content to a temporary checkpoint
// file as it arrives. Its methods may run on any goroutine (one at a
// time), never touching the node. One from SnapshotPartials.Receive may
// resume from a partial (snapresume.go).
type SnapshotReceiver struct {
	msg  *raftpb.Message
	cw   *wal.CheckpointWriter
	sum  SnapshotSummer
	head headKeeper
	resume
}

// SnapshotHeadMax is how much of a snapshot's content a receiver keeps in
// memory as it arrives, for core.CheckSnapshot: the header of any state
// but one with a great many leases or users, whose file is read back.
const SnapshotHeadMax = 4 << 20

// headKeeper passes content through to w and keeps its first
// SnapshotHeadMax bytes.
type headKeeper struct {
	w    io.Writer
	head []byte
}

func (h *headKeeper) Write(p []byte) (int, error) {
	if k := min(len(p), SnapshotHeadMax-len(h.head)); k > 0 {
		h.head = append(h.head, p[:k]...)
	}
	return h.w.Write(p)
}

// ReceivedFile is a snapshot received into a sealed checkpoint file,
// waiting for StepSnapshot.
type ReceivedFile struct {
	Msg   *raftpb.Message
	Index uint64
	Name  string
	Bytes int64
	// Head is the content's first SnapshotHeadMax bytes (all of it, if
	// shorter).
	Head []byte
}

// ReceiveSnapshot starts receiving the content streamed beside m, a
// MsgSnap, into a temporary file of dk's, from zero: Abort removes it.
func ReceiveSnapshot(dk *disk.Disk, m *raftpb.Message) (*SnapshotReceiver, error) {
	if m.GetType() != raftpb.MsgSnap || m.GetSnapshot() == nil {
		return nil, errorf("snapshot stream with %s instead of MsgSnap", m.GetType())
	}
	cw, err := dk.ReceiveSnapshot(m.GetSnapshot().GetMetadata().GetIndex())
	if err != nil {
		return nil, errorf("receiving a snapshot: %w", err)
	}
	r := &SnapshotReceiver{msg: m, cw: cw}
	r.head.w = cw
	r.sum.W = &r.head
	return r, nil
}

// Write appends content as it arrives.
func (r *SnapshotReceiver) Write(p []byte) (int, error) {
	if r.WasCut() {
		return 0, ErrSnapshotCut
	}
	return r.sum.Write(p)
}

// Received is how many content bytes arrived so far.
func (r *SnapshotReceiver) Received() int64 { return r.sum.sum.Bytes }

// Name is the temporary file's.
func (r *SnapshotReceiver) Name() string { return r.cw.Name() }

// Finish checks what arrived against the leader's sum and seals the file.
// A transfer that does not match is refused and its file removed, with
// the partial it resumed from.
func (r *SnapshotReceiver) Finish(want SnapshotSum) (*ReceivedFile, error) {
	index := r.msg.GetSnapshot().GetMetadata().GetIndex()
	got := r.sum.Sum()
	var err error
	switch {
	case got.Bytes != want.Bytes:
		r.cw.Abort()
		err = errorf("snapshot %d torn: %d bytes arrived, the leader sent %d", index, got.Bytes, want.Bytes)
	case got.CRC != want.CRC:
		r.cw.Abort()
		err = errorf("snapshot %d damaged in transfer: crc32c %08x, the leader's %08x", index, got.CRC, want.CRC)
	default:
		if err = r.cw.Seal(); err != nil {
			err = errorf("snapshot %d: %w", index, err)
		}
	}
	r.ended = true
	r.finished(err == nil)
	if err != nil {
		return nil, err
	}
	return &ReceivedFile{Msg: r.msg, Index: index, Name: r.cw.Name(), Bytes: got.Bytes, Head: r.head.head}, nil
}

// Abort gives up a transfer that broke off. With SnapshotPartials its
// file is kept, for the next transfer to resume from; without, removed.
// After Finish it does nothing.
func (r *SnapshotReceiver) Abort() {
	switch {
	case r.ended:
	case r.ps == nil:
		r.cw.Abort()
	default:
		r.keep()
	}
}

// StepSnapshot hands the node a received snapshot: a job off the loop
// checks the head of its content (the file is read back only for a head
// longer than the receiver kept), then the node takes it on the loop and
// done gets the outcome (nil once the node took it), on the loop. The
// member answers its peers and serves its old state until the new one is
// decoded (loadSnapshot).
func (d *Driver) StepSnapshot(f *ReceivedFile, done func(error)) {
	var in *core.IncomingSnapshot
	check := Step{Kind: StepSnapshotCheck, Bytes: int64(len(f.Head))}
	if d.planted(core.BugSnapshotLoadOnLoop) {
		// planted: the whole file is read back on the loop before the
		// member answers anything, as before issue 18
		check = Step{Kind: StepSnapshotLoad, Bytes: f.Bytes, HoldsLoop: true}
		f.Head = nil
	}
	check.Run = func() error {
		var err error
		in, err = core.CheckSnapshot(f.Head, f.Bytes, f.Name)
		if errors.Is(err, core.ErrSnapshotHeadShort) {
			var content []byte
			if content, err = d.disk.ReadReceived(f.Name, f.Index); err == nil {
				in, err = core.CheckSnapshot(content, f.Bytes, f.Name)
			}
		}
		if err != nil {
			_ = d.disk.RemoveReceived(f.Name) // the error says what went wrong
		}
		return err
	}
	d.env.Background(Job{
		Steps: []Step{check},
		Done: func(err error) {
			if err == nil && d.failed {
				err = errorf("snapshot %d: the member failed", f.Index)
			}
			if err == nil {
				if err = d.node.StepSnapshot(f.Msg, in); err != nil {
					d.removeReceived(f.Name)
				}
			}
			switch {
			case errors.Is(err, core.ErrSnapshotRefused):
				d.log.Info("snapshot from the leader not needed", "index", f.Index, "err", err)
			case err != nil:
				d.log.Warn("snapshot from the leader not installed", "index", f.Index, "err", err)
			default:
				d.log.Info("snapshot from the leader taken", "index", f.Index, "bytes", f.Bytes)
			}
			done(err)
		},
	})
}

// loadSnapshot reads back and decodes, off the loop, a snapshot the node
// took and made durable as the checkpoint at its index (Ready.Load), and
// hands the new state to the node. No other checkpoint is written while
// it loads, so that one stays.
func (d *Driver) loadSnapshot(in *core.IncomingSnapshot) {
	cfg := d.node.Config()
	start := d.env.Now()
	var p *core.PreparedSnapshot
	d.env.Background(Job{
		Steps: []Step{{Kind: StepSnapshotLoad, Bytes: in.Bytes, HoldsLoop: bug(cfg, core.BugSnapshotLoadOnLoop), Run: func() error {
			content, err := d.disk.ReadCheckpoint(in.Index)
			if err == nil {
				p, err = core.PrepareSnapshot(in, content, cfg)
			}
			return err
		}}},
		Done: func(err error) {
			if d.failed {
				return
			}
			d.node.SnapshotPrepared(p, err)
			if err == nil {
				d.log.Info("snapshot from the leader loaded", "index", in.Index, "bytes", in.Bytes, "took", d.env.Now().Sub(start).Round(1e6).String())
			}
		},
	})
}

// bug says whether cfg plants the bug name (detcdbugs builds only).
func bug(cfg core.Config, name string) bool {
	return core.PlantedBugsAvailable() && cfg.PlantedBug == name
}

// planted says whether the node's config plants the bug name; without
// the detcdbugs tag it costs no copy of the config.
func (d *Driver) planted(name string) bool {
	return core.PlantedBugsAvailable() && bug(d.node.Config(), name)
}

// removeReceived removes, off the loop, a received file the node did not
// take.
func (d *Driver) removeReceived(name string) {
	d.env.Background(Job{
		Steps: []Step{{Kind: StepRemove, Run: func() error { return d.disk.RemoveReceived(name) }}},
		Done: func(err error) {
			if err != nil {
				d.log.Warn("removing a snapshot not installed", "err", err)
			}
		},
	})
}
