package grpcsvc

import (
	"context"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestClientErr: Lock and Election answer as etcd's do through clientv3:
// etcd's errors as Unknown with their message, a canceled call with its
// context's error, the concurrency package's own errors as Unknown.
func TestClientErr(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		code codes.Code
		msg  string
	}{
		{"etcd's", context.Background(), rpctypes.ErrGRPCLeaseNotFound, codes.Unknown, "etcdserver: requested lease not found"},
		{"canceled", canceled, rpctypes.ErrGRPCCanceled, codes.Canceled, "context canceled"},
		{"concurrency's", context.Background(), errElectionNoLeader, codes.Unknown, "election: no leader"},
		{"other status", context.Background(), status.Error(codes.Internal, "x"), codes.Internal, "x"},
	} {
		st := status.Convert(clientErr(tc.ctx, tc.err))
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("%s: %v %q, want %v %q", tc.name, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
	if clientErr(context.Background(), nil) != nil {
		t.Error("nil is not an error")
	}
}

// TestPrefixEnd: the end of a prefix's range, as clientv3's WithPrefix.
func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"a/": "a0", "a\xff": "b", "\xff\xff": "\x00"} {
		if got := string(prefixEnd(in)); got != want {
			t.Errorf("prefixEnd(%q) = %q, want %q", in, got, want)
		}
	}
}
