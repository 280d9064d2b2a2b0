package sim

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/grpcsvc"
)

// rangeStreamMethod is etcd 3.7's RangeStream's full gRPC name.
const rangeStreamMethod = "/etcdserverpb.KV/RangeStream"

// rangeStreamRPC is the RangeStream stream of a member's services.
var rangeStreamRPC = streamRPC{rangeStreamMethod}

// rangeStreamOdds: one range in rangeStreamOdds that RangeStream serves
// (its sort order is none or by key, ascending) goes as one, as
// clientv3's GetStream sends it.
const rangeStreamOdds = 4

// streamable says whether the simulated clients send r as a
// RangeStream: when it reads in key order. etcd's (and so detcd's)
// RangeStream also takes another sort target with order NONE, which a
// unary Range sorts ascending within the limit's window; a stream sorts
// each chunk so, and resumes after the chunk's last key in that order,
// skipping keys below it: no client would read the result as a range.
// Revision filters it refuses, as etcd's.
func streamable(r *pb.RangeRequest) bool {
	inKeyOrder := r.SortTarget == pb.RangeRequest_KEY && r.SortOrder != pb.RangeRequest_DESCEND
	filtered := r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	return inKeyOrder && !filtered
}

// rangeStream is a RangeStream call's server stream in process: its Recv
// gives the request, its Send collects the chunks, as clientv3's
// GetStream reads them.
type rangeStream struct {
	streamBase
	req    *pb.RangeRequest
	chunks []*pb.RangeResponse
}

var _ grpc.ServerStream = (*rangeStream)(nil)

// RecvMsg reads the call's one request.
func (s *rangeStream) RecvMsg(m any) error {
	proto.Merge(m.(proto.Message), s.req)
	return nil
}

// SendMsg keeps a chunk: the handler does not reuse it.
func (s *rangeStream) SendMsg(m any) error {
	s.chunks = append(s.chunks, m.(*pb.RangeStreamResponse).RangeResponse)
	return nil
}

// joined is the chunks as one response, as a client joins them: every
// chunk's keys in order, and the last chunk's header, more and count.
func (s *rangeStream) joined() *pb.RangeResponse {
	if len(s.chunks) == 0 {
		return &pb.RangeResponse{}
	}
	last := s.chunks[len(s.chunks)-1]
	out := &pb.RangeResponse{Header: last.Header, More: last.More, Count: last.Count}
	for _, c := range s.chunks {
		out.Kvs = append(out.Kvs, c.Kvs...)
	}
	return out
}

// rangeStreamCall is r as a RangeStream on m, through the server's
// metrics interceptor, the guard and the KV service's real handler, as a
// task; the answer's Msg is the chunks joined.
func (m *member) rangeStreamCall(r *pb.RangeRequest) serviceCall {
	return func(token string, cb func(core.Response)) {
		m.spawnCall(token, cb, func(ctx context.Context, _ *registry, _ *grpcsvc.Guard) (proto.Message, error) {
			ss := &rangeStream{streamBase: streamBase{ctx}, req: r}
			info := &grpc.StreamServerInfo{FullMethod: rangeStreamMethod, IsServerStream: true}
			if err := m.runStream(rangeStreamRPC, ss, info); err != nil {
				return nil, err
			}
			return ss.joined(), nil
		})
	}
}
