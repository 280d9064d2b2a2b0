package sim

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// TestStreamable: the clients stream only ranges read in key order; a
// unary Range sorts another target with order NONE ascending, which a
// stream cannot, chunk by chunk (etcd's RangeStream takes it and skips
// keys).
func TestStreamable(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *pb.RangeRequest
		want bool
	}{
		{"plain", &pb.RangeRequest{Key: []byte("a")}, true},
		{"by key ascending", &pb.RangeRequest{SortTarget: pb.RangeRequest_KEY, SortOrder: pb.RangeRequest_ASCEND}, true},
		{"by key descending", &pb.RangeRequest{SortTarget: pb.RangeRequest_KEY, SortOrder: pb.RangeRequest_DESCEND}, false},
		{"by version, order none", &pb.RangeRequest{SortTarget: pb.RangeRequest_VERSION}, false},
		{"by value ascending", &pb.RangeRequest{SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_ASCEND}, false},
		{"revision filter", &pb.RangeRequest{MinModRevision: 2}, false},
	} {
		if got := streamable(tc.r); got != tc.want {
			t.Errorf("%s: streamable %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRangeStreamJoined: a stream's chunks join into one range response:
// every chunk's keys in order, the last chunk's header, more and count.
func TestRangeStreamJoined(t *testing.T) {
	kv := func(k string) *mvccpb.KeyValue { return &mvccpb.KeyValue{Key: []byte(k)} }
	s := &rangeStream{}
	for _, c := range []*pb.RangeResponse{{Kvs: []*mvccpb.KeyValue{kv("a"), kv("b")}},
		{Kvs: []*mvccpb.KeyValue{kv("c")}, Header: &pb.ResponseHeader{Revision: 7}, More: true, Count: 5}} {
		if err := s.SendMsg(&pb.RangeStreamResponse{RangeResponse: c}); err != nil {
			t.Fatal(err)
		}
	}
	want := &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{kv("a"), kv("b"), kv("c")}, Header: &pb.ResponseHeader{Revision: 7}, More: true, Count: 5}
	if got := s.joined(); !proto.Equal(got, want) {
		t.Fatalf("joined %v, want %v", got, want)
	}
	if got := (&rangeStream{}).joined(); !proto.Equal(got, &pb.RangeResponse{}) {
		t.Fatalf("no chunks joined into %v, want an empty response", got)
	}
}
