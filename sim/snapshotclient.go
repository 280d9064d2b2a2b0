package sim

import (
	"context"
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/grpcsvc"
)

// snapshotMethod is the Snapshot stream's full gRPC name.
const snapshotMethod = "/etcdserverpb.Maintenance/Snapshot"

// snapshotBytesMax bounds what a snapshot stream collects: the
// simulator's stores hold megabytes at most (a large store's pre-fill is
// counted in sizes only, never sent).
const snapshotBytesMax = 256 << 20

// errSnapshotTooLarge ends a stream past snapshotBytesMax.
var errSnapshotTooLarge = errors.New("sim: snapshot stream above snapshotBytesMax")

// snapshotStream is a Snapshot call's server stream as the handler sees
// it, in process: it collects what the handler sends, as `etcdctl
// snapshot save` does, with no flow control (the operator reads as fast
// as the member sends).
type snapshotStream struct {
	streamBase
	chunks []*pb.SnapshotResponse
	bytes  int
}

var _ grpc.ServerStream = (*snapshotStream)(nil)

// RecvMsg reads the call's one request, which for Snapshot is empty.
func (s *snapshotStream) RecvMsg(any) error { return nil }

// SendMsg keeps a copy of a response: the handler may reuse its buffer.
func (s *snapshotStream) SendMsg(m any) error {
	r := proto.Clone(m.(*pb.SnapshotResponse)).(*pb.SnapshotResponse)
	if s.bytes += len(r.Blob); s.bytes > snapshotBytesMax {
		return errSnapshotTooLarge
	}
	s.chunks = append(s.chunks, r)
	return nil
}

// snapshotRPC is the Snapshot stream of a member's services.
var snapshotRPC = streamRPC{snapshotMethod}

// snapshotCall is a Snapshot stream on m into ss, through the server's
// metrics interceptor, the guard (a learner serves snapshots, as etcd's
// does) and the Maintenance service's real handler, as a task; the
// answer's Msg is the stream's last response, the SHA-256 of the rest.
func (m *member) snapshotCall(ss *snapshotStream) serviceCall {
	return func(token string, cb func(core.Response)) {
		m.spawnCall(token, cb, func(ctx context.Context, _ *registry, _ *grpcsvc.Guard) (proto.Message, error) {
			ss.ctx = ctx
			err := m.runStream(snapshotRPC, ss, &grpc.StreamServerInfo{FullMethod: snapshotMethod, IsServerStream: true})
			if err != nil {
				return nil, err
			}
			if len(ss.chunks) == 0 {
				return &pb.SnapshotResponse{}, nil
			}
			return ss.chunks[len(ss.chunks)-1], nil
		})
	}
}
