package server

import (
	"errors"
	"fmt"
	"io"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/internal/chunk"
)

// A snapshot stream is: hello, the MsgSnap, the content in frameChunk
// frames, then one frameSum frame with the content's driver.SnapshotSum.
// The receiver writes the content to disk as it arrives (memory bounded by
// one frame) and refuses a stream that ends without the sum or does not
// match it.

// frameSum carries a snapshot's driver.SnapshotSum after its content.
const frameSum = frameChunk + 1

// receiveSnapshotContent takes the content that follows m on ss into a
// temporary checkpoint file, hands the sealed file to the loop and acks
// once the member installed it (or reports why not).
func (t *peerTransport) receiveSnapshotContent(ss grpc.ServerStream, m *raftpb.Message) error {
	r, err := driver.ReceiveSnapshot(t.disk, m)
	if err != nil {
		return err
	}
	f, err := receiveSnapshotFrames(ss, r)
	if err != nil {
		r.Abort()
		t.log.Warn("receiving a snapshot failed", "from", fmt.Sprintf("%x", m.GetFrom()), "index", m.GetSnapshot().GetMetadata().GetIndex(), "bytes", r.Received(), "err", err)
		return err
	}
	t.log.Info("received a snapshot", "from", fmt.Sprintf("%x", m.GetFrom()), "index", f.Index, "bytes", f.Bytes)
	done := make(chan error, 1)
	if err := t.loop.Post(ss.Context(), func() { t.drv.StepSnapshot(f, func(err error) { done <- err }) }); err != nil {
		_ = t.disk.RemoveReceived(f.Name) // the loop never got it
		return err
	}
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, core.ErrSnapshotRefused) {
			return err
		}
	case <-ss.Context().Done():
		// The loop still installs it: the leader learns from raft.
		return ss.Context().Err()
	}
	return ss.SendMsg(new([]byte))
}

// receiveSnapshotFrames writes the content frames to r until the sum and
// the end of the stream.
func receiveSnapshotFrames(ss grpc.ServerStream, r *driver.SnapshotReceiver) (*driver.ReceivedFile, error) {
	var sum *driver.SnapshotSum
	for {
		var b []byte
		if err := ss.RecvMsg(&b); err != nil {
			if !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("snapshot stream broke after %d bytes: %w", r.Received(), err)
			}
			break
		}
		switch {
		case len(b) == 0:
		case sum != nil:
			return nil, errors.New("snapshot stream goes on after its sum")
		case b[0] == frameChunk:
			if _, err := r.Write(b[1:]); err != nil {
				return nil, err
			}
		case b[0] == frameSum:
			s, err := driver.ParseSnapshotSum(b[1:])
			if err != nil {
				return nil, err
			}
			sum = &s
		}
	}
	if sum == nil {
		return nil, fmt.Errorf("snapshot stream torn: it ended after %d bytes without the leader's sum", r.Received())
	}
	return r.Finish(*sum)
}

// sendSnapshotContent streams a snapshot's content in frames, then its
// sum.
func sendSnapshotContent(stream grpc.ClientStream, snap core.OutgoingSnapshot) error {
	w := &chunk.Writer{Size: snapshotChunkBytes, Send: func(b []byte) error { return stream.SendMsg(frame(frameChunk, b)) }}
	sw := &driver.SnapshotSummer{W: w}
	if err := snap.Write(sw); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return stream.SendMsg(frame(frameSum, sw.Sum().Marshal()))
}
