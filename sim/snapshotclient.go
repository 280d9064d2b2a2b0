package sim

import (
	"context"
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
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
	ctx    context.Context
	chunks []*pb.SnapshotResponse
	bytes  int
}

var _ grpc.ServerStream = (*snapshotStream)(nil)

func (s *snapshotStream) Context() context.Context     { return s.ctx }
func (s *snapshotStream) SetHeader(metadata.MD) error  { return nil }
func (s *snapshotStream) SendHeader(metadata.MD) error { return nil }
func (s *snapshotStream) SetTrailer(metadata.MD)       {}

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

// snapshotHandler is etcd's generated handler of the Snapshot stream,
// which the gRPC server calls: it reads the request and wraps the stream.
func snapshotHandler() grpc.StreamHandler {
	for _, sd := range pb.Maintenance_ServiceDesc.Streams {
		if sd.StreamName == "Snapshot" {
			return sd.Handler
		}
	}
	panic("sim: etcd's Maintenance service has no Snapshot stream")
}

// snapshotCall is a Snapshot stream on m into ss, through the server's
// metrics interceptor, the guard (a learner serves snapshots, as etcd's
// does) and the Maintenance service's real handler, as a task; the
// answer's Msg is the stream's last response, the SHA-256 of the rest.
func (m *member) snapshotCall(ss *snapshotStream) serviceCall {
	h := snapshotHandler()
	return func(token string, cb func(core.Response)) {
		in := m.inst
		m.spawnCall(token, cb, func(ctx context.Context, svc *grpcsvc.Services, guard *grpcsvc.Guard) (proto.Message, error) {
			ss.ctx = ctx
			err := in.Stream(svc.Maintenance, ss, &grpc.StreamServerInfo{FullMethod: snapshotMethod, IsServerStream: true}, func(srv any, metered grpc.ServerStream) error {
				return guard.Stream(ctx, snapshotMethod, func(ctx context.Context) error {
					ss.ctx = ctx
					return h(srv, metered)
				})
			})
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
