package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// testServer starts a member on a free loopback port with its data in dir.
func testServer(t testing.TB, dir string, mod func(*Config)) (*Server, *clientv3.Client) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.ListenClientURLs = []string{"http://127.0.0.1:0"}
	cfg.AdvertiseClientURLs = []string{"http://127.0.0.1:2379"}
	cfg.InitialAdvertisePeerURLs = []string{"http://127.0.0.1:2380"}
	cfg.InitialCluster = "default=http://127.0.0.1:2380"
	cfg.ListenPeerURLs = []string{"http://127.0.0.1:0"}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: s.Addrs(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() {
		cli.Close()
		s.Stop()
	})
	return s, cli
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestClientKV(t *testing.T) {
	_, cli := testServer(t, t.TempDir(), nil)
	c := ctx(t)
	// etcdctl's endpoint status table divides by the database size.
	if st, err := cli.Status(c, cli.Endpoints()[0]); err != nil || st.DbSize == 0 || st.DbSizeInUse > st.DbSize {
		t.Fatalf("status of an empty member: %v %v", st, err)
	}
	if _, err := cli.Put(c, "foo", "bar"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(c, "foo2", "baz"); err != nil {
		t.Fatal(err)
	}
	g, err := cli.Get(c, "foo", clientv3.WithPrefix())
	if err != nil || g.Count != 2 || string(g.Kvs[1].Value) != "baz" || g.Header.Revision != 3 {
		t.Fatalf("get prefix: %v %v", g, err)
	}
	g, err = cli.Get(c, "foo", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithLimit(1), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil || !g.More || string(g.Kvs[0].Key) != "foo2" {
		t.Fatalf("sorted, limited get: %v %v", g, err)
	}
	tr, err := cli.Txn(c).If(clientv3.Compare(clientv3.Value("foo"), "=", "bar")).
		Then(clientv3.OpPut("foo", "new"), clientv3.OpGet("foo")).Else(clientv3.OpGet("foo")).Commit()
	if err != nil || !tr.Succeeded || string(tr.Responses[1].GetResponseRange().Kvs[0].Value) != "new" {
		t.Fatalf("txn: %v %v", tr, err)
	}
	d, err := cli.Delete(c, "foo", clientv3.WithPrefix(), clientv3.WithPrevKV())
	if err != nil || d.Deleted != 2 || len(d.PrevKvs) != 2 {
		t.Fatalf("delete: %v %v", d, err)
	}
	if _, err := cli.Compact(c, d.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(c, "foo", clientv3.WithRev(2)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read below compaction: %v", err)
	}
	if _, err := cli.Get(c, "foo", clientv3.WithRev(99)); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("future read: %v", err)
	}
	if _, err := cli.Put(c, "", "x"); !errors.Is(err, rpctypes.ErrEmptyKey) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := cli.Put(c, "big", strings.Repeat("x", 1600*1024)); !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	st, err := cli.Status(c, cli.Endpoints()[0])
	if err != nil || st.Leader == 0 || st.Version != Version || st.Header.Revision != d.Header.Revision {
		t.Fatalf("status: %v %v", st, err)
	}
	h, err := cli.HashKV(c, cli.Endpoints()[0], 0)
	if err != nil || h.HashRevision != d.Header.Revision {
		t.Fatalf("hashkv: %v %v", h, err)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	s, _ := testServer(t, t.TempDir(), nil)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addrs()[0] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.status.leader.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := get("/health"); code != 200 || body != `{"health":"true","reason":""}` {
		t.Fatalf("/health: %d %s", code, body)
	}
	if code, body := get("/version"); code != 200 || !strings.Contains(body, `"etcdserver":"3.7.3"`) {
		t.Fatalf("/version: %d %s", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "etcd_server_has_leader 1") {
		t.Fatalf("/metrics: %d", code)
	}
}

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	s, cli := testServer(t, dir, func(c *Config) { c.SnapshotCount = 100 })
	c := ctx(t)
	for i := 0; i < 500; i++ {
		if _, err := cli.Put(c, fmt.Sprintf("k%04d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	cli.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	_, cli = testServer(t, dir, nil)
	g, err := cli.Get(c, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || g.Count != 500 || g.Header.Revision != 501 {
		t.Fatalf("after restart: %v %v", g, err)
	}
}

// TestQuotaAlarm walks etcd's NOSPACE procedure: writes fail once the
// quota is exceeded and stay refused until the space is reclaimed and the
// alarm disarmed.
func TestQuotaAlarm(t *testing.T) {
	_, cli := testServer(t, t.TempDir(), func(c *Config) { c.QuotaBackendBytes = 8 << 20 })
	c := ctx(t)
	value := strings.Repeat("v", 64<<10)
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		_, full = cli.Put(c, "k", value)
	}
	if !errors.Is(full, rpctypes.ErrNoSpace) {
		t.Fatalf("writing past the quota: %v", full)
	}
	alarms, err := cli.AlarmList(c)
	if err != nil || len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm.String() != "NOSPACE" {
		t.Fatalf("alarm list: %v %v", alarms, err)
	}
	if _, err := cli.Put(c, "small", "x"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("a small write while the alarm is raised: %v", err)
	}
	// etcd's Status lists each alarm in its protobuf text form.
	st, err := cli.Status(c, cli.Endpoints()[0])
	if err != nil || !slices.Contains(st.Errors, alarms.Alarms[0].String()) {
		t.Fatalf("status under the alarm: %v %v", st, err)
	}
	if _, err := cli.Delete(c, "nothing"); err != nil {
		t.Fatalf("deletes go on under the alarm: %v", err)
	}
	g, err := cli.Get(c, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(c, g.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// etcd's Defragment response carries no header.
	if d, err := cli.Defragment(c, cli.Endpoints()[0]); err != nil || d.Header != nil {
		t.Fatalf("defragment: %v %v", d, err)
	}
	if _, err := cli.AlarmDisarm(c, &clientv3.AlarmMember{MemberID: alarms.Alarms[0].MemberID, Alarm: alarms.Alarms[0].Alarm}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(c, "small", "x"); err != nil {
		t.Fatalf("after compact, defrag, disarm: %v", err)
	}
}

func TestClientWatch(t *testing.T) {
	_, cli := testServer(t, t.TempDir(), func(c *Config) { c.WatchProgressNotifyInterval = 200 * time.Millisecond })
	c := ctx(t)
	put := func(k, v string) int64 {
		r, err := cli.Put(c, k, v)
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	first := put("w/a", "1")
	put("w/b", "2")
	next := func(ch clientv3.WatchChan) clientv3.WatchResponse {
		t.Helper()
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatal("watch channel closed")
			}
			return r
		case <-c.Done():
			t.Fatal("no watch response")
		}
		return clientv3.WatchResponse{}
	}
	// History from a past revision, then live, with prev kvs.
	hist := cli.Watch(c, "w/", clientv3.WithPrefix(), clientv3.WithRev(first), clientv3.WithPrevKV())
	r := next(hist)
	if len(r.Events) != 2 || string(r.Events[0].Kv.Key) != "w/a" || string(r.Events[1].Kv.Key) != "w/b" {
		t.Fatalf("history: %+v", r.Events)
	}
	put("w/a", "3")
	r = next(hist)
	if len(r.Events) != 1 || string(r.Events[0].PrevKv.Value) != "1" || string(r.Events[0].Kv.Value) != "3" {
		t.Fatalf("live event with prev kv: %+v", r.Events)
	}
	// Filters.
	onlyDeletes := cli.Watch(c, "w/a", clientv3.WithFilterPut())
	onlyPuts := cli.Watch(c, "w/a", clientv3.WithFilterDelete())
	if _, err := cli.Delete(c, "w/a"); err != nil {
		t.Fatal(err)
	}
	put("w/a", "4")
	if r := next(onlyDeletes); len(r.Events) != 1 || !r.Events[0].IsModify() && r.Events[0].Type != clientv3.EventTypeDelete {
		t.Fatalf("NOPUT watcher: %+v", r.Events)
	}
	if r := next(onlyPuts); len(r.Events) != 1 || r.Events[0].Type != clientv3.EventTypePut || string(r.Events[0].Kv.Value) != "4" {
		t.Fatalf("NODELETE watcher: %+v", r.Events)
	}
	// Progress: notifications on the interval, and on request.
	prog := cli.Watch(c, "quiet", clientv3.WithProgressNotify())
	if r := next(prog); !r.IsProgressNotify() {
		t.Fatalf("expected a progress notification, got %+v", r)
	}
	if err := cli.RequestProgress(c); err != nil {
		t.Fatal(err)
	}
	// A compacted start revision cancels the watcher with the compaction
	// revision.
	cur := put("w/c", "5")
	if _, err := cli.Compact(c, cur); err != nil {
		t.Fatal(err)
	}
	old := cli.Watch(c, "w/", clientv3.WithPrefix(), clientv3.WithRev(first))
	if r := next(old); r.CompactRevision != cur || r.Err() == nil {
		t.Fatalf("compacted watch: %+v", r)
	}
}

// TestClientLeases drives leases through the official client, and its
// concurrency package, which is built on them.
func TestClientLeases(t *testing.T) {
	_, cli := testServer(t, t.TempDir(), nil)
	c := ctx(t)
	g, err := cli.Grant(c, 5)
	if err != nil || g.TTL != 5 {
		t.Fatalf("grant: %v %v", g, err)
	}
	if _, err := cli.Put(c, "leased", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(c, "x", "v", clientv3.WithLease(12345)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("unknown lease: %v", err)
	}
	ka, err := cli.KeepAliveOnce(c, g.ID)
	if err != nil || ka.TTL != 5 {
		t.Fatalf("keep alive once: %v %v", ka, err)
	}
	ttl, err := cli.TimeToLive(c, g.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 5 || len(ttl.Keys) != 1 {
		t.Fatalf("time to live: %v %v", ttl, err)
	}
	ls, err := cli.Leases(c)
	if err != nil || len(ls.Leases) != 1 {
		t.Fatalf("leases: %v %v", ls, err)
	}
	ch, err := cli.KeepAlive(c, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := <-ch; r == nil || r.TTL != 5 {
		t.Fatalf("keep alive stream: %v", r)
	}
	if _, err := cli.Revoke(c, g.ID); err != nil {
		t.Fatal(err)
	}
	if r, _ := cli.Get(c, "leased"); r.Count != 0 {
		t.Fatal("revoke left the key")
	}
	if r, _ := cli.TimeToLive(c, g.ID); r.TTL != -1 {
		t.Fatalf("time to live after revoke: %v", r)
	}

	// The concurrency package: a session, a mutex and an election.
	s1, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	mu := concurrency.NewMutex(s1, "/lock")
	if err := mu.Lock(c); err != nil {
		t.Fatal(err)
	}
	s2, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := concurrency.NewMutex(s2, "/lock").TryLock(c); !errors.Is(err, concurrency.ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	if err := mu.Unlock(c); err != nil {
		t.Fatal(err)
	}
	e := concurrency.NewElection(s1, "/leader")
	if err := e.Campaign(c, "me"); err != nil {
		t.Fatal(err)
	}
	if l, err := e.Leader(c); err != nil || string(l.Kvs[0].Value) != "me" {
		t.Fatalf("election leader: %v %v", l, err)
	}
}
