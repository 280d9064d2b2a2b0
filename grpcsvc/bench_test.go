package grpcsvc

import (
	"context"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// BenchmarkLeaseKeepAliveOnce is the handler's share of a keep-alive as
// clientv3's KeepAliveOnce and etcd's benchmark tool send them, a stream
// each (open, one keep-alive, its answer, hang up), over an in-process
// stream and a member that answers at once; "leader required" is the
// same on a stream the guard may end (clientv3's KeepAlive streams),
// whose receive side runs apart.
func BenchmarkLeaseKeepAliveOnce(b *testing.B) {
	for _, bc := range []struct {
		name string
		ctx  context.Context
	}{
		{"plain", context.Background()},
		{"leader required", requireLeaderCtx()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := &LeaseService{b: &keepAliveMember{ttl: 9}}
			g := NewGuard(&fakeRole{leader: 1})
			handler := func(ss pb.Lease_LeaseKeepAliveServer) error {
				return g.Stream(ss.Context(), "/etcdserverpb.Lease/LeaseKeepAlive", func(ctx context.Context) error {
					return s.LeaseKeepAlive(kaGuardedStream{ss, ctx})
				})
			}
			req := &pb.LeaseKeepAliveRequest{ID: 1}
			b.ReportAllocs()
			for b.Loop() {
				ctx, cancel := context.WithCancel(bc.ctx)
				stream := startPipe(ctx, handler)
				if err := stream.Send(req); err != nil {
					b.Fatal(err)
				}
				if _, err := stream.Recv(); err != nil {
					b.Fatal(err)
				}
				cancel()
				for {
					if _, err := stream.Recv(); err != nil {
						break
					}
				}
			}
		})
	}
}
