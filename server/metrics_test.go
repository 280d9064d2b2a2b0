package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestMetricsCountWork: etcd's key space, lease and watch metrics follow
// what clients did.
func TestMetricsCountWork(t *testing.T) {
	s, cli := testServer(t, t.TempDir(), nil)
	c := ctx(t)
	wch := cli.Watch(c, "k", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	<-wch
	lease, err := cli.Grant(c, 60)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "k2"} {
		if _, err := cli.Put(c, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Txn(c).Then(clientv3.OpPut("k3", "v"), clientv3.OpGet("k1")).Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(c, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(c, "k2"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(c, lease.ID); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(s.metrics.req.events) < 4 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	r := &s.metrics.req
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"etcd_mvcc_put_total", testutil.ToFloat64(r.puts), 3},
		{"etcd_mvcc_delete_total", testutil.ToFloat64(r.deletes), 1},
		{"etcd_mvcc_range_total", testutil.ToFloat64(r.ranges), 2},
		{"etcd_mvcc_txn_total", testutil.ToFloat64(r.txn), 1},
		{"etcd_debugging_mvcc_total_put_size_in_bytes", testutil.ToFloat64(r.putBytes), 9},
		{"etcd_debugging_lease_granted_total", testutil.ToFloat64(r.leaseGranted), 1},
		{"etcd_debugging_lease_revoked_total", testutil.ToFloat64(r.leaseRevoked), 1},
		{"etcd_debugging_mvcc_watch_stream_total", testutil.ToFloat64(r.watchStreams), 1},
		{"etcd_debugging_mvcc_watcher_total", testutil.ToFloat64(r.watchers), 1},
		{"etcd_debugging_mvcc_events_total", testutil.ToFloat64(r.events), 4},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// The codec counts every message's bytes, the watch stream's too;
	// each request above is a few bytes at least.
	if got := testutil.ToFloat64(r.grpcReceived); got < 8*2 {
		t.Errorf("etcd_network_client_grpc_received_bytes_total = %v, want the requests' bytes", got)
	}
	if got := testutil.ToFloat64(r.grpcSent); got < 8*10 {
		t.Errorf("etcd_network_client_grpc_sent_bytes_total = %v, want the responses' bytes", got)
	}
}

// TestMetricsPeers: the traffic between members shows, by member id, in
// etcd's network metrics.
func TestMetricsPeers(t *testing.T) {
	tc := newTestCluster(t, 3)
	lead := tc.leader()
	if _, err := tc.client(lead).Put(ctx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	leader, follower := tc.servers[lead], tc.servers[(lead+1)%3]
	sent := testutil.ToFloat64(leader.metrics.peer.sent.WithLabelValues(hexID(follower.node.ID())))
	received := testutil.ToFloat64(follower.metrics.peer.received.WithLabelValues(hexID(leader.node.ID())))
	active := testutil.ToFloat64(leader.metrics.peer.active.WithLabelValues(hexID(leader.node.ID()), hexID(follower.node.ID())))
	if sent == 0 || received == 0 || active != 1 {
		t.Fatalf("leader sent %v bytes to a follower, which received %v; active %v", sent, received, active)
	}
	if n := testutil.CollectAndCount(leader.metrics.reg, "etcd_network_known_peers"); n != 3 {
		t.Fatalf("etcd_network_known_peers has %d series, want 3", n)
	}
}

// TestMetricsSnapshots: a member that fell behind the leader's log gets a
// snapshot, which both sides count.
func TestMetricsSnapshots(t *testing.T) {
	tc := newTestClusterWith(t, 3, "http", func(c *Config) { c.SnapshotCount, c.SnapshotCatchUpEntries = 10, 5 })
	lead := tc.leader()
	behind := (lead + 1) % 3
	tc.stop(behind)
	cli := tc.client(lead)
	const puts = 200
	for i := range puts {
		if _, err := cli.Put(ctx(t), fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	tc.start(behind)
	b := tc.servers[behind]
	// The counters are bumped when the transfer's HTTP exchange ends, which
	// may come after the member applied the snapshot; and a leader elected
	// meanwhile sends it instead: so wait for the counts, by any peer.
	var sent, received float64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		sent, received = 0, counterSum(b.metrics.peer.snapReceive.success)
		for i, s := range tc.servers {
			if i != behind {
				sent += counterSum(s.metrics.peer.snapSend.success)
			}
		}
		if sent >= 1 && received >= 1 && b.Rev() >= puts+1 {
			return
		}
	}
	t.Fatalf("snapshots sent %v, received %v (member at revision %d)", sent, received, b.Rev())
}

// counterSum adds up a counter's series, whatever their labels.
func counterSum(v *prometheus.CounterVec) float64 {
	ch := make(chan prometheus.Metric, 16)
	go func() { v.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err == nil {
			sum += d.GetCounter().GetValue()
		}
	}
	return sum
}

// TestMetricsLearnerPromoteFailure: a refused promotion is counted by its
// reason, in etcd's words.
func TestMetricsLearnerPromoteFailure(t *testing.T) {
	s, cli := testServer(t, t.TempDir(), nil)
	_, err := cli.MemberPromote(ctx(t), s.node.ID())
	if err == nil {
		t.Fatal("promoting a voting member succeeded")
	}
	reason := status.Convert(err).Message()
	if v := testutil.ToFloat64(s.metrics.req.learnerPromoteFailed.WithLabelValues(reason)); v != 1 {
		t.Fatalf("etcd_server_learner_promote_failures{Reason=%q} = %v, want 1", reason, v)
	}
}

// TestAPIVersionReadsOneKey: the API version label comes from the
// request's metadata, any case, without copying the rest of it (one small
// allocation per request, not a copy of every header).
func TestAPIVersionReadsOneKey(t *testing.T) {
	md := metadata.Pairs("Client-API-Version", "3.7", "token", "t", "user-agent", "grpc-go", ":authority", "127.0.0.1", "content-type", "application/grpc")
	cases := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"sent", metadata.NewIncomingContext(context.Background(), md), "3.7"},
		{"none", metadata.NewIncomingContext(context.Background(), metadata.Pairs("token", "t")), "unknown"},
		{"no metadata", context.Background(), "unknown"},
	}
	for _, c := range cases {
		if got := apiVersion(c.ctx); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { apiVersion(cases[0].ctx) }); allocs > 1 {
		t.Errorf("%.0f allocations per call, want at most 1", allocs)
	}
}
