package server

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
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

// TestUnixSockets: unix:// client and peer URLs listen on socket files,
// as etcd's; clients reach the member through its client socket.
func TestUnixSockets(t *testing.T) {
	dir := t.TempDir()
	peer := "unix://" + filepath.Join(dir, "peer.sock")
	client := "unix://" + filepath.Join(dir, "client.sock")
	s, _ := testServer(t, filepath.Join(dir, "data"), func(c *Config) {
		c.ListenClientURLs, c.AdvertiseClientURLs = []string{client}, []string{client}
		c.ListenPeerURLs, c.InitialAdvertisePeerURLs = []string{peer}, []string{peer}
		c.InitialCluster = "default=" + peer
	})
	if got := s.Addrs(); len(got) != 1 || got[0] != filepath.Join(dir, "client.sock") {
		t.Fatalf("client addresses %v", got)
	}
	cli := newClient(t, clientv3.Config{Endpoints: []string{client}})
	c := ctx(t)
	if _, err := cli.Put(c, "k", "v"); err != nil {
		t.Fatalf("put over the unix socket: %v", err)
	}
	if ms, err := cli.MemberList(c); err != nil || len(ms.Members) != 1 || ms.Members[0].PeerURLs[0] != peer {
		t.Fatalf("member list: %v %v", ms, err)
	}
}

// TestUnixPeers: members whose peer URLs are unix sockets form a cluster.
func TestUnixPeers(t *testing.T) {
	dir := t.TempDir()
	tc := &testCluster{t: t}
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("m%d=unix://%s", i, filepath.Join(dir, fmt.Sprintf("p%d.sock", i))))
	}
	for i := range 3 {
		cfg := DefaultConfig()
		cfg.Name, cfg.DataDir = fmt.Sprintf("m%d", i), filepath.Join(dir, fmt.Sprintf("d%d", i))
		client := "unix://" + filepath.Join(dir, fmt.Sprintf("c%d.sock", i))
		peer := strings.TrimPrefix(initial[i], cfg.Name+"=")
		cfg.ListenClientURLs, cfg.AdvertiseClientURLs = []string{client}, []string{client}
		cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = []string{peer}, []string{peer}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		tc.cfgs, tc.servers = append(tc.cfgs, cfg), append(tc.servers, nil)
		tc.start(i)
	}
	t.Cleanup(func() {
		for _, s := range tc.servers {
			s.Stop()
		}
	})
	lead := tc.leader()
	if _, err := tc.client((lead+1)%3).Put(ctx(t), "k", "v"); err != nil {
		t.Fatalf("put through a follower: %v", err)
	}
}

// TestV3betaAndDebugVars: etcd 3.7 still serves the gateway under
// /v3beta/, and the process's expvars on /debug/vars.
func TestV3betaAndDebugVars(t *testing.T) {
	s, _ := testServer(t, t.TempDir(), nil)
	addr := s.Addrs()[0]
	if code, body := gatewayPost(t, addr, "/v3beta/kv/put", `{"key":"`+b64("k")+`","value":"`+b64("v")+`"}`, ""); code != http.StatusOK {
		t.Fatalf("/v3beta/kv/put: %d %s", code, body)
	}
	if code, body := gatewayPost(t, addr, "/v3/kv/range", `{"key":"`+b64("k")+`"}`, ""); code != http.StatusOK || !strings.Contains(body, b64("v")) {
		t.Fatalf("/v3/kv/range after a /v3beta put: %d %s", code, body)
	}
	resp, err := http.Get("http://" + addr + "/debug/vars")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var vars map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil || vars["memstats"] == nil || vars["cmdline"] == nil {
		t.Fatalf("/debug/vars: %v, keys %d", err, len(vars))
	}
}

// TestSnapshotResponsesHaveNoHeader: etcd's Snapshot stream leaves every
// response's header empty, the checksum's included.
func TestSnapshotResponsesHaveNoHeader(t *testing.T) {
	s, _ := testServer(t, t.TempDir(), nil)
	cli := newClient(t, clientv3.Config{Endpoints: s.Addrs()})
	c := ctx(t)
	if _, err := cli.Put(c, "k", "v"); err != nil {
		t.Fatal(err)
	}
	stream, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Snapshot(c, &pb.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; ; n++ {
		resp, err := stream.Recv()
		if err == io.EOF {
			if n < 2 {
				t.Fatalf("%d responses, want the data and the checksum", n)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header != nil {
			t.Fatalf("response %d carries header %v; etcd's carry none", n, resp.Header)
		}
	}
}
