package server

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding/gzip"
)

// TestGzipCompressedRequests: etcd registers gRPC's gzip compressor, so a
// client that compresses its requests is served, not told Unimplemented.
func TestGzipCompressedRequests(t *testing.T) {
	s, _ := testServer(t, t.TempDir(), nil)
	cli := newClient(t, clientv3.Config{Endpoints: s.Addrs(), DialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name))}})
	c := ctx(t)
	if _, err := cli.Put(c, "k", "v"); err != nil {
		t.Fatalf("gzip put: %v", err)
	}
	g, err := cli.Get(c, "k")
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "v" {
		t.Fatalf("gzip get: %v %v", g, err)
	}
}

// newClient is a client with cfg, closed when the test ends.
func newClient(t *testing.T, cfg clientv3.Config) *clientv3.Client {
	t.Helper()
	cfg.DialTimeout, cfg.Logger = 5*time.Second, zap.NewNop()
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
