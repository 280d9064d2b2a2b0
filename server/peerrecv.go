package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/server/wire"
)

// The receive side of the peer transport: the streams of raft and
// member-to-member messages and of snapshots, handed to the loop, and the
// Cluster and HashKV calls.

// hashFunc is this member's hash at rev (0: its current revision), and
// its current revision.
type hashFunc func(ctx context.Context, rev int64) (mvcc.KVHash, int64, error)

func (t *peerTransport) checkHello(ss grpc.ServerStream) (hello, error) {
	var b []byte
	if err := ss.RecvMsg(&b); err != nil {
		return hello{}, err
	}
	var h hello
	if len(b) == 0 || b[0] != frameHello || json.Unmarshal(b[1:], &h) != nil {
		return h, errors.New("peer stream without a hello")
	}
	if h.ClusterID != t.clusterID {
		t.log.Warn("refusing a peer of another cluster", "peer", fmt.Sprintf("%x", h.From), "its-cluster", fmt.Sprintf("%x", h.ClusterID))
		return h, fmt.Errorf("%w: local %x, remote %x", errClusterMismatch, t.clusterID, h.ClusterID)
	}
	return h, nil
}

func (t *peerTransport) receiveMessages(ss grpc.ServerStream) error {
	h, err := t.checkHello(ss)
	if err != nil {
		return err
	}
	from := hexID(h.From)
	for {
		var b []byte
		if err := ss.RecvMsg(&b); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			t.metrics.recvFailed.WithLabelValues(from).Inc()
			return err
		}
		t.metrics.received.WithLabelValues(from).Add(float64(len(b)))
		if len(b) == 0 {
			continue
		}
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

// receiveSnapshot takes a snapshot stream, resumable on SnapshotResume.
func (t *peerTransport) receiveSnapshot(ss grpc.ServerStream, resumable bool) error {
	h, err := t.checkHello(ss)
	if err != nil {
		return err
	}
	done := t.metrics.snapshotStarted(&t.metrics.snapReceive, hexID(h.From))
	err = t.receiveSnapshotBody(ss, resumable)
	done(err)
	return err
}

// receiveSnapshotBody takes a snapshot's message and content after the
// hello and hands them to the loop.
func (t *peerTransport) receiveSnapshotBody(ss grpc.ServerStream, resumable bool) error {
	var b []byte
	if err := ss.RecvMsg(&b); err != nil {
		return err
	}
	m := &raftpb.Message{}
	if len(b) == 0 || b[0] != frameRaft || proto.Unmarshal(b[1:], m) != nil || m.GetType() != raftpb.MsgSnap {
		return errors.New("snapshot stream without its MsgSnap")
	}
	return t.receiveSnapshotContent(ss, m, resumable)
}

// clusterInfo answers Cluster with the membership the loop last applied.
func (t *peerTransport) clusterInfo() (*[]byte, error) {
	b, err := json.Marshal(clusterInfo{ClusterID: t.clusterID, Members: t.memberList()})
	return &b, err
}

// serveHashKV answers a peer's hashKVRequest (etcd's /members/hashkv).
func (t *peerTransport) serveHashKV(ctx context.Context, in []byte) (*[]byte, error) {
	var req hashKVRequest
	if err := json.Unmarshal(in, &req); err != nil {
		return nil, fmt.Errorf("bad hash request: %w", err)
	}
	reply := hashKVReply{MemberID: t.id}
	if req.ClusterID != t.clusterID {
		reply.Err = hashErrCluster
	} else {
		h, rev, err := t.hashes(ctx, req.Revision)
		switch {
		case errors.Is(err, core.ErrCompacted):
			reply.Err = hashErrCompacted
		case errors.Is(err, core.ErrFutureRev):
			reply.Err = hashErrFutureRev
		case err != nil:
			return nil, err
		}
		reply.Revision, reply.Hash, reply.CompactRevision, reply.HashRevision = rev, h.Hash, int64(h.CompactRev), int64(h.Rev)
	}
	b, err := json.Marshal(reply)
	return &b, err
}
