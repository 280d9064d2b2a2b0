package server

import (
	"context"
	"errors"
	"io"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/server/wire"
)

// The receive side of the peer transport: the streams of raft and
// member-to-member messages and of snapshots, handed to the loop (etcd's
// hash requests: hashkv.go).

// hashFunc is this member's hash at rev (0: its current revision), and
// its current revision.
type hashFunc func(ctx context.Context, rev int64) (mvcc.KVHash, int64, error)

// receiveMessages hands a sender's messages to the loop until its stream
// ends, or its sender is removed from the cluster: it then opens another,
// which it is refused.
func (t *peerTransport) receiveMessages(s *peerStream, fromID uint64) error {
	from := hexID(fromID)
	for {
		b, err := s.recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			t.metrics.recvFailed.WithLabelValues(from).Inc()
			return err
		}
		if t.isRemoved(fromID) {
			return errRemovedMember
		}
		t.metrics.received.WithLabelValues(from).Add(float64(len(b)))
		// A loop that is behind drops what it cannot take, as a lossy
		// network would.
		rm, pm, err := wire.Decode(b)
		switch {
		case err != nil:
			return err
		case rm != nil:
			t.loop.PostPeer(func() { t.drv.Step(rm) })
		case pm != nil:
			t.loop.PostPeer(func() { t.drv.StepPeer(pm) })
		}
	}
}

// receiveSnapshot takes a snapshot's message and content and hands them
// to the loop.
func (t *peerTransport) receiveSnapshot(ctx context.Context, s *peerStream, resumable bool) error {
	b, err := s.recv()
	if err != nil {
		return err
	}
	m := &raftpb.Message{}
	if len(b) == 0 || b[0] != frameRaft || proto.Unmarshal(b[1:], m) != nil || m.GetType() != raftpb.MsgSnap {
		return errors.New("snapshot stream without its MsgSnap")
	}
	return t.receiveSnapshotContent(ctx, s, m, resumable)
}
