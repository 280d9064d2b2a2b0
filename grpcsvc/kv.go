package grpcsvc

import (
	"bytes"
	"context"
	"math"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
)

type kvServer struct {
	pb.UnimplementedKVServer
	b Backend
}

// do sends a request through the loop and unwraps its response.
func do[T proto.Message](ctx context.Context, b Backend, r core.Request) (T, error) {
	var zero T
	resp, err := b.Do(ctx, r)
	if err != nil {
		return zero, toGRPC(err)
	}
	if resp.Err != nil {
		return zero, toGRPC(resp.Err)
	}
	t, ok := resp.Msg.(T)
	if !ok {
		// A bug, not the client's doing: answer it rather than crash.
		return zero, status.Errorf(codes.Internal, "detcd: %T answered with %T", zero, resp.Msg)
	}
	return t, nil
}

// readView returns a view to serve a range from: the member's own state
// for a serializable read, a view past a ReadIndex for a linearizable one;
// authOn says whether auth was on when the view was taken.
func readView(ctx context.Context, b Backend, serializable bool) (v *mvcc.View, h *pb.ResponseHeader, authOn bool, err error) {
	if serializable {
		v, h, err := b.SerializableView(ctx)
		return v, h, b.AuthEnabled(), toGRPC(err)
	}
	resp, err := b.Do(ctx, core.Request{ReadIndex: true})
	if err != nil {
		return nil, nil, false, toGRPC(err)
	}
	if resp.Err != nil {
		return nil, nil, false, toGRPC(resp.Err)
	}
	return resp.View, resp.Header, resp.AuthEnabled, nil
}

func (s *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := core.Validate(&core.Request{Range: r}, s.b.MaxTxnOps()); err != nil {
		return nil, toGRPC(err)
	}
	if s.b.AuthEnabled() {
		// The loop checks the user's permissions on the range.
		return do[*pb.RangeResponse](ctx, s.b, core.Request{Range: r})
	}
	v, hdr, authOn, err := readView(ctx, s.b, r.Serializable)
	if err != nil {
		return nil, err
	}
	if authOn {
		// Auth came on while the read waited for its read index: etcd
		// checks the user's permissions then, so the loop serves it.
		return do[*pb.RangeResponse](ctx, s.b, core.Request{Range: r})
	}
	resp, err := core.ExecuteRange(v, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	resp.Header = withRevision(hdr, resp.Header.Revision)
	return resp, nil
}

// permitRead checks, with auth on, that the client may read the range,
// by a count-only range through the loop; it returns that range's header.
// With auth off it does nothing.
func permitRead(ctx context.Context, b Backend, key, end []byte) (*pb.ResponseHeader, error) {
	if !b.AuthEnabled() {
		return nil, nil
	}
	return checkRead(ctx, b, key, end)
}

// checkRead is permitRead's check through the loop, which refuses the
// read if auth is on and the client may not.
func checkRead(ctx context.Context, b Backend, key, end []byte) (*pb.ResponseHeader, error) {
	resp, err := do[*pb.RangeResponse](ctx, b, core.Request{Range: &pb.RangeRequest{Key: key, RangeEnd: end, CountOnly: true, Serializable: true}})
	if err != nil {
		return nil, err
	}
	return resp.Header, nil
}

func withRevision(h *pb.ResponseHeader, rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: h.ClusterId, MemberId: h.MemberId, RaftTerm: h.RaftTerm, Revision: rev}
}

func (s *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	return do[*pb.PutResponse](ctx, s.b, core.Request{Put: r})
}

func (s *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	return do[*pb.DeleteRangeResponse](ctx, s.b, core.Request{DeleteRange: r})
}

func (s *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	return do[*pb.TxnResponse](ctx, s.b, core.Request{Txn: r})
}

func (s *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	return do[*pb.CompactionResponse](ctx, s.b, core.Request{Compaction: r})
}

// initialStreamChunkLimit is the first chunk's key count; later chunks
// double or halve towards the request size limit, as etcd's do.
const initialStreamChunkLimit = 10

// RangeStream serves a range in chunks pinned to one revision, as etcd
// 3.7 does.
func (s *kvServer) RangeStream(r *pb.RangeRequest, rs pb.KV_RangeStreamServer) error {
	if err := core.Validate(&core.Request{Range: r}, s.b.MaxTxnOps()); err != nil {
		return toGRPC(err)
	}
	if r.SortOrder != pb.RangeRequest_NONE && !(r.SortTarget == pb.RangeRequest_KEY && r.SortOrder == pb.RangeRequest_ASCEND) {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support custom sort orders")
	}
	if r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support revision filters")
	}
	// The user's permissions are checked once the view is taken, as etcd
	// checks them once the read index is applied.
	v, hdr, authOn, err := readView(rs.Context(), s.b, r.Serializable)
	if err != nil {
		return err
	}
	if authOn {
		if _, err := checkRead(rs.Context(), s.b, r.Key, r.RangeEnd); err != nil {
			return err
		}
	}
	return rangeStream(v, hdr, proto.Clone(r).(*pb.RangeRequest), rs, s.b.MaxRequestBytes())
}

func rangeStream(v *mvcc.View, hdr *pb.ResponseHeader, r *pb.RangeRequest, rs pb.KV_RangeStreamServer, target int) error {
	if r.CountOnly {
		resp, err := core.ExecuteRange(v, r)
		if err != nil {
			return toGRPC(err)
		}
		out := &pb.RangeResponse{Header: withRevision(hdr, resp.Header.Revision), Count: resp.Count}
		return rs.Send(&pb.RangeStreamResponse{RangeResponse: out})
	}
	total := r.Limit
	if total == 0 {
		total = math.MaxInt64
	}
	r.Limit = min(initialStreamChunkLimit, total)
	var count, headerRev int64
	for {
		resp, err := core.ExecuteRange(v, r)
		if err != nil {
			return toGRPC(err)
		}
		if headerRev == 0 {
			headerRev = resp.Header.Revision
			if r.Revision == 0 {
				r.Revision = headerRev
			}
		}
		count += int64(len(resp.Kvs))
		var nextKey []byte
		if resp.More {
			nextKey = append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
		}
		out := &pb.RangeResponse{Kvs: resp.Kvs}
		done := !resp.More || count == total
		if done {
			out.Header = withRevision(hdr, headerRev)
			out.More, out.Count = resp.More, count
			if resp.More {
				rest, err := core.ExecuteRange(v, &pb.RangeRequest{Key: nextKey, RangeEnd: r.RangeEnd, Revision: r.Revision, CountOnly: true})
				if err != nil {
					return toGRPC(err)
				}
				out.Count += rest.Count
			}
		}
		if err := rs.Send(&pb.RangeStreamResponse{RangeResponse: out}); err != nil {
			return err
		}
		if done {
			return nil
		}
		r.Key = nextKey
		size := proto.Size(resp)
		switch {
		case size < target/2:
			r.Limit *= 2
		case size > target*2:
			r.Limit /= 2
		}
		r.Limit = max(r.Limit, 1)
		r.Limit = min(r.Limit, total-count)
	}
}
