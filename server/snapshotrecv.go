package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/snapresume"
)

// A snapshot stream is: the MsgSnap, the content in frameChunk frames,
// then one frameSum frame with the content's driver.SnapshotSum; the
// receiver answers with a frameStatus, its verdict. The receiver writes
// the content to disk as it arrives (memory bounded by one frame) and
// refuses a stream that ends without the sum or does not match it.
//
// On pathSnapshotResume (version 2 of the stream; a sender falls back to
// pathSnapshot on a member without it), the receiver answers the MsgSnap
// with a frameOffer (snapresume.Offer: the chunks it holds of a
// transfer that broke off), and the sender sends, chunk by chunk of
// snapresume.ChunkBytes, either the chunk (frameChunk) or, for one the
// offer holds, a frameHeld with its index, which the receiver copies from
// its partial file.

// Frame kinds of snapshot streams, after package wire's.
const (
	// frameSum carries a snapshot's driver.SnapshotSum after its content.
	frameSum = frameChunk + 1
	// frameOffer carries a receiver's marshaled snapresume.Offer.
	frameOffer = frameSum + 1
	// frameHeld carries the u32 index of a chunk the offer holds.
	frameHeld = frameOffer + 1
	// frameStatus ends a snapshot stream from the receiver: empty if it
	// took the snapshot, else why not.
	frameStatus = frameHeld + 1
)

// SnapshotCutWaitMax bounds how long a transfer waits for the one it cut,
// or the same sender's earlier one, to keep its file; past it, it starts
// without that file.
const SnapshotCutWaitMax = 5 * time.Second

// receiveSnapshotContent takes the content that follows m on s into a
// temporary checkpoint file, resuming from a partial one if resumable, and
// hands the sealed file to the loop; it returns once the member installed
// it (or says why not).
func (t *peerTransport) receiveSnapshotContent(ctx context.Context, s *peerStream, m *raftpb.Message, resumable bool) error {
	r, err := t.partials.Receive(m)
	if err != nil {
		return err
	}
	if resumable {
		if err := t.sendOffer(ctx, s, r); err != nil {
			r.Abort()
			return err
		}
	}
	from, index := fmt.Sprintf("%x", m.GetFrom()), m.GetSnapshot().GetMetadata().GetIndex()
	f, held, err := receiveSnapshotFrames(s, r)
	if err != nil {
		r.Abort()
		t.log.Warn("receiving a snapshot failed", "from", from, "index", index, "bytes", r.Received(), "err", err)
		return err
	}
	t.log.Info("received a snapshot", "from", from, "index", f.Index, "bytes", f.Bytes, "resumed-bytes", held)
	var stepped error
	done := t.loop.NewSignal()
	if err := t.loop.Post(ctx, func() {
		t.drv.StepSnapshot(f, func(err error) {
			stepped = err
			done.Fire()
		})
	}); err != nil {
		_ = t.disk.RemoveReceived(f.Name) // the loop never got it
		return err
	}
	if err := done.Wait(ctx); err != nil {
		// The loop still installs it, if it runs: the leader learns from
		// raft.
		return err
	}
	if stepped != nil && !errors.Is(stepped, core.ErrSnapshotRefused) {
		return stepped
	}
	return nil
}

// sendOffer waits (bounded) for the transfers r cut, and the sender's
// earlier one whose end may not have shown here yet, to keep their
// files, then offers the sender what r may resume from.
func (t *peerTransport) sendOffer(ctx context.Context, s *peerStream, r *driver.SnapshotReceiver) error {
	t.awaitReleased(ctx, r.Cut())
	offer, err := r.Offer()
	if err != nil {
		t.log.Warn("a partial snapshot is not resumable", "err", err)
	}
	if p := r.Resumes(); p.Name != "" {
		t.log.Info("resuming a snapshot transfer", "partial-index", p.Index, "partial-term", p.Term, "partial-bytes", p.Bytes)
	}
	return s.send(frameOffer, offer.Marshal())
}

// awaitReleased waits, within SnapshotCutWaitMax, for each channel to
// close: the real runtime's (PeerReceiverConfig.AwaitReleased is the
// simulator's, in virtual time).
func awaitReleased(ctx context.Context, released []<-chan struct{}) {
	wait, cancel := context.WithTimeout(ctx, SnapshotCutWaitMax)
	defer cancel()
	for _, c := range released {
		select {
		case <-c:
		case <-wait.Done():
		}
	}
}

// receiveSnapshotFrames writes the content frames to r until the sum and
// the end of the stream, and says how many content bytes came from the
// partial r resumed.
func receiveSnapshotFrames(s *peerStream, r *driver.SnapshotReceiver) (*driver.ReceivedFile, int64, error) {
	var sum *driver.SnapshotSum
	var held int64
	for {
		b, err := s.recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return nil, held, fmt.Errorf("snapshot stream broke after %d bytes: %w", r.Received(), err)
			}
			break
		}
		switch {
		case len(b) == 0:
		case sum != nil:
			return nil, held, errors.New("snapshot stream goes on after its sum")
		case b[0] == frameChunk:
			if _, err := r.Write(b[1:]); err != nil {
				return nil, held, err
			}
		case b[0] == frameHeld && len(b) == 5:
			before := r.Received()
			if err := r.Held(int(binary.LittleEndian.Uint32(b[1:]))); err != nil {
				return nil, held, err
			}
			held += r.Received() - before
		case b[0] == frameSum:
			s, err := driver.ParseSnapshotSum(b[1:])
			if err != nil {
				return nil, held, err
			}
			sum = &s
		}
	}
	if sum == nil {
		return nil, held, fmt.Errorf("snapshot stream torn: it ended after %d bytes without the leader's sum", r.Received())
	}
	f, err := r.Finish(*sum)
	return f, held, err
}

// sendSnapshotContent streams a snapshot's content in frames, skipping
// the chunks offer holds, then its sum.
func sendSnapshotContent(s *peerStream, snap core.OutgoingSnapshot, offer snapresume.Offer) (*driver.ResumeWriter, error) {
	w := &driver.ResumeWriter{
		Offer: offer,
		Send:  func(b []byte) error { return s.send(frameChunk, b) },
		Skip: func(i int) error {
			return s.send(frameHeld, binary.LittleEndian.AppendUint32(nil, uint32(i)))
		},
	}
	sw := &driver.SnapshotSummer{W: w}
	if err := snap.Write(sw); err != nil {
		return w, err
	}
	if err := w.Flush(); err != nil {
		return w, err
	}
	return w, s.send(frameSum, sw.Sum().Marshal())
}
