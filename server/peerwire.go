package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/server/wire"
)

// The peer wire: members exchange raft messages, member-to-member
// messages and snapshots over gRPC streams on the peer URLs, and answer
// each other's Cluster (who is in it) and HashKV (for the corruption
// checks) calls, with a codec that passes bytes through (frames are
// detcd's own). Every stream opens with a hello naming the cluster and
// the sender, so a member of another cluster is refused. A snapshot
// streams on SnapshotResume (snapshotrecv.go), or, to a member without
// it, on Snapshot, from zero.

const (
	peerService = "detcd.peer.v1.Peer"
	// peerQueueMax bounds the messages waiting for one peer: a slow or
	// dead peer loses messages (raft retries) instead of holding the loop.
	peerQueueMax    = 4096
	peerDialTimeout = 3 * time.Second
	peerBackoffMax  = 2 * time.Second
	// peerMsgBytesMax bounds one gRPC message between members (a
	// snapshot's frames are smaller; a raft message may carry many
	// entries).
	peerMsgBytesMax = 1 << 30
)

// Frame kinds (package wire holds the format).
const (
	frameHello = wire.Hello
	frameRaft  = wire.Raft
	frameChunk = wire.Chunk
)

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "detcdraw" }

type hello struct {
	ClusterID uint64 `json:"clusterID"`
	From      uint64 `json:"from"`
	To        uint64 `json:"to"`
}

func frame(kind byte, payload []byte) *[]byte {
	b := wire.Frame(kind, payload)
	return &b
}

// errClusterMismatch refuses a member of another cluster.
var errClusterMismatch = errors.New("cluster ID mismatch")

// clusterInfo answers Cluster: the members a joining member joins.
type clusterInfo struct {
	ClusterID uint64        `json:"clusterID"`
	Members   []core.Member `json:"members"`
}

// hashKVRequest asks a peer for its hash at a revision (0: its current).
type hashKVRequest struct {
	ClusterID uint64 `json:"clusterID"`
	Revision  int64  `json:"revision"`
}

// hashKVReply is a peer's HashKVResponse, or why it has none.
type hashKVReply struct {
	MemberID uint64 `json:"memberID"`
	// Revision is the peer's current revision (the response header's).
	Revision        int64  `json:"revision"`
	Hash            uint32 `json:"hash"`
	CompactRevision int64  `json:"compactRevision"`
	HashRevision    int64  `json:"hashRevision"`
	Err             string `json:"err,omitempty"`
}

// The errors a hashKVReply carries, by name.
const (
	hashErrCompacted = "compacted"
	hashErrFutureRev = "future revision"
	hashErrCluster   = "cluster ID mismatch"
)

var hashErrs = map[string]error{hashErrCompacted: core.ErrCompacted, hashErrFutureRev: core.ErrFutureRev, hashErrCluster: errClusterMismatch}

// unaryPeerMethod is a Cluster or HashKV handler: the request's bytes in,
// the reply's out.
func unaryPeerMethod(name string, serve func(t *peerTransport, ctx context.Context, in []byte) (*[]byte, error)) grpc.MethodDesc {
	return grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		var in []byte
		if err := dec(&in); err != nil {
			return nil, err
		}
		return serve(srv.(*peerTransport), ctx, in)
	}}
}

var peerDesc = grpc.ServiceDesc{
	ServiceName: peerService,
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{
		{StreamName: "Messages", Handler: func(srv any, ss grpc.ServerStream) error { return srv.(*peerTransport).receiveMessages(ss) }, ClientStreams: true},
		{StreamName: "Snapshot", Handler: func(srv any, ss grpc.ServerStream) error { return srv.(*peerTransport).receiveSnapshot(ss, false) }, ClientStreams: true},
		{StreamName: "SnapshotResume", Handler: func(srv any, ss grpc.ServerStream) error { return srv.(*peerTransport).receiveSnapshot(ss, true) }, ClientStreams: true, ServerStreams: true},
	},
	Methods: []grpc.MethodDesc{
		unaryPeerMethod("Cluster", func(t *peerTransport, _ context.Context, _ []byte) (*[]byte, error) { return t.clusterInfo() }),
		unaryPeerMethod("HashKV", (*peerTransport).serveHashKV),
		probeMethod,
	},
}
