package server

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeServerStream receives recvErrs in turn and sends without fail.
type fakeServerStream struct {
	grpc.ServerStream
	recvErrs []error
}

func (s *fakeServerStream) RecvMsg(any) error {
	err := s.recvErrs[0]
	s.recvErrs = s.recvErrs[1:]
	return err
}

func (s *fakeServerStream) SendMsg(any) error { return nil }

// TestGRPCMetrics: the gRPC server's metrics count as etcd's (the
// go-grpc-middleware provider's) do: every method's series at zero
// before any call, a unary call's request and response whether it fails
// or not, each receive and send on a stream, failed ones too, and the
// code a call ended with, a context's error as the gRPC server maps it.
func TestGRPCMetrics(t *testing.T) {
	g := newGRPCMetrics()
	srv := grpc.NewServer()
	pb.RegisterLeaseServer(srv, pb.UnimplementedLeaseServer{})
	g.initialize(srv.GetServiceInfo(), true)
	if n := testutil.CollectAndCount(g.handled); n != 5*17 {
		t.Fatalf("%d handled series before any call, want 5 methods x 17 codes", n)
	}
	for _, name := range []string{"grpc_server_started_total", "grpc_server_msg_received_total", "grpc_server_msg_sent_total"} {
		if n := testutil.CollectAndCount(g.started, name) + testutil.CollectAndCount(g.received, name) + testutil.CollectAndCount(g.sent, name); n != 5 {
			t.Fatalf("%s: %d series before any call, want 5", name, n)
		}
	}

	grant := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.Lease/LeaseGrant"}
	for _, err := range []error{nil, context.Canceled, status.Error(codes.NotFound, "x")} {
		_, _ = g.unary(context.Background(), nil, grant, func(context.Context, any) (any, error) { return nil, err })
	}
	ka := &grpc.StreamServerInfo{FullMethod: "/etcdserverpb.Lease/LeaseKeepAlive", IsClientStream: true, IsServerStream: true}
	ss := &fakeServerStream{recvErrs: []error{nil, io.EOF}}
	err := g.stream(nil, ss, ka, func(_ any, s grpc.ServerStream) error {
		for s.RecvMsg(nil) == nil {
			_ = s.SendMsg(nil)
		}
		return context.DeadlineExceeded
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the stream interceptor returned %v, not the handler's error", err)
	}
	for _, tc := range []struct {
		vec    string
		labels []string
		want   float64
	}{
		{"started", []string{"unary", "etcdserverpb.Lease", "LeaseGrant"}, 3},
		{"received", []string{"unary", "etcdserverpb.Lease", "LeaseGrant"}, 3},
		{"sent", []string{"unary", "etcdserverpb.Lease", "LeaseGrant"}, 3},
		{"handled", []string{"unary", "etcdserverpb.Lease", "LeaseGrant", "OK"}, 1},
		{"handled", []string{"unary", "etcdserverpb.Lease", "LeaseGrant", "Canceled"}, 1},
		{"handled", []string{"unary", "etcdserverpb.Lease", "LeaseGrant", "NotFound"}, 1},
		{"started", []string{"bidi_stream", "etcdserverpb.Lease", "LeaseKeepAlive"}, 1},
		{"received", []string{"bidi_stream", "etcdserverpb.Lease", "LeaseKeepAlive"}, 2},
		{"sent", []string{"bidi_stream", "etcdserverpb.Lease", "LeaseKeepAlive"}, 1},
		{"handled", []string{"bidi_stream", "etcdserverpb.Lease", "LeaseKeepAlive", "DeadlineExceeded"}, 1},
		{"handled", []string{"bidi_stream", "etcdserverpb.Lease", "LeaseKeepAlive", "OK"}, 0},
	} {
		var got float64
		switch tc.vec {
		case "started":
			got = testutil.ToFloat64(g.started.WithLabelValues(tc.labels...))
		case "received":
			got = testutil.ToFloat64(g.received.WithLabelValues(tc.labels...))
		case "sent":
			got = testutil.ToFloat64(g.sent.WithLabelValues(tc.labels...))
		case "handled":
			got = testutil.ToFloat64(g.handled.WithLabelValues(tc.labels...))
		}
		if got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.vec, tc.labels, got, tc.want)
		}
	}
}
