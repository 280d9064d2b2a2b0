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
	c, err := caller(ctx, s.b)
	if err != nil {
		return nil, err
	}
	if !c.Known {
		// The loop looks the token up and checks the permissions.
		return do[*pb.RangeResponse](ctx, s.b, core.Request{Range: r})
	}
	v, hdr, authOn, err := readView(ctx, s.b, r.Serializable)
	if err != nil {
		return nil, err
	}
	if authOn && c.User == "" {
		// Auth came on while the read waited for its read index: etcd
		// checks the user's permissions then, so the loop serves it.
		return do[*pb.RangeResponse](ctx, s.b, core.Request{Range: r})
	}
	if err := permitRead(s.b, c, r.Key, r.RangeEnd); err != nil {
		return nil, err
	}
	resp, err := core.ExecuteRange(v, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	resp.Header = withRevision(hdr, resp.Header.Revision)
	return resp, nil
}

// caller is who sends a read; with auth off, anyone (no user), known.
func caller(ctx context.Context, b Backend) (Caller, error) {
	if !b.AuthEnabled() {
		return Caller{Known: true}, nil
	}
	c, err := b.Caller(ctx)
	return c, toGRPC(err)
}

// permitRead checks, with auth on, that c may read the range, under the
// permissions published once the read's view was taken (so at least as
// new as it): as etcd, which checks a read against the auth store of the
// moment it serves it.
// A read whose view was taken with auth off is anyone's.
func permitRead(b Backend, c Caller, key, end []byte) error {
	if c.User == "" {
		return nil
	}
	return c.permit(b.Perms(), key, end)
}

// checkRead checks, with auth on, that the caller may read the range now.
func checkRead(ctx context.Context, b Backend, key, end []byte) error {
	c, err := caller(ctx, b)
	if err != nil {
		return err
	}
	if !c.Known {
		return permitReadOnLoop(ctx, b, key, end)
	}
	return permitRead(b, c, key, end)
}

// permitReadOnLoop is permitRead for a caller only the loop knows: a
// count-only range through it.
func permitReadOnLoop(ctx context.Context, b Backend, key, end []byte) error {
	_, err := do[*pb.RangeResponse](ctx, b, core.Request{Range: &pb.RangeRequest{Key: key, RangeEnd: end, CountOnly: true, Serializable: true}})
	return err
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
	ctx := rs.Context()
	c, err := caller(ctx, s.b)
	if err != nil {
		return err
	}
	// The permissions are checked once the view is taken, as etcd
	// checks them once the read index is applied.
	v, hdr, authOn, err := readView(ctx, s.b, r.Serializable)
	if err != nil {
		return err
	}
	if !c.Known || authOn && c.User == "" {
		err = permitReadOnLoop(ctx, s.b, r.Key, r.RangeEnd)
	} else {
		err = permitRead(s.b, c, r.Key, r.RangeEnd)
	}
	if err != nil {
		return err
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
