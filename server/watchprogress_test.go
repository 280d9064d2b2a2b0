package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// streamWindowBytes is the test client's fixed HTTP/2 flow-control window
// (gRPC's smallest): it stops a range the client does not read from
// leaving the server, and, fixed, turns off gRPC's window growth.
const streamWindowBytes = 64 << 10

// TestProgressNotifyPassesRangeInFlight: on one client connection, a
// range whose response the client is not reading (it waits in the server,
// stopped by flow control) does not hold back the connection's watch
// stream: its periodic progress notifications still arrive, each at a
// revision the watcher is synced to. etcd's e2e TestWatchDelayFor* tests
// measure the same while ten clients read the store; here the range is
// held in flight for certain, and what is checked is the order, not time.
func TestProgressNotifyPassesRangeInFlight(t *testing.T) {
	const (
		keys        = 40
		valueBytes  = 100 << 10 // 4 MB in all: many windows' worth
		progressMin = 3
	)
	s, cli := testServer(t, t.TempDir(), func(c *Config) {
		c.HeartbeatInterval, c.ElectionTimeout = 10*time.Millisecond, 100*time.Millisecond
		c.WatchProgressNotifyInterval = 20 * time.Millisecond
	})
	waitLeader(t, s)
	c := ctx(t)
	value := strings.Repeat("v", valueBytes)
	var rev int64
	for i := range keys {
		r, err := cli.Put(c, fmt.Sprintf("k%02d", i), value)
		if err != nil {
			t.Fatal(err)
		}
		rev = r.Header.Revision
	}
	conn, err := grpc.NewClient(s.Addrs()[0], grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(streamWindowBytes), grpc.WithInitialConnWindowSize(streamWindowBytes))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rs, err := pb.NewKVClient(conn).RangeStream(c, &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := pb.NewWatchClient(conn).Watch(c)
	if err != nil {
		t.Fatal(err)
	}
	create := &pb.WatchCreateRequest{Key: []byte("other"), ProgressNotify: true}
	if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: create}}); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < progressMin; {
		resp, err := ws.Recv()
		if err != nil {
			t.Fatalf("watch with a range in flight on its connection: %v", err)
		}
		if resp.Created {
			continue
		}
		if len(resp.Events) != 0 || resp.Header.Revision != rev {
			t.Fatalf("progress notification %v, want no events at revision %d", resp, rev)
		}
		got++
	}
	// The range was in flight all along: all of it is still to come.
	var kvs int
	for kvs < keys {
		resp, err := rs.Recv()
		if err != nil {
			t.Fatalf("range after the notifications, %d keys in: %v", kvs, err)
		}
		kvs += len(resp.GetRangeResponse().GetKvs())
	}
}
