package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// wantStatus checks a gRPC error's code and message.
func wantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if st := status.Convert(err); err == nil || st.Code() != code || st.Message() != msg {
		t.Fatalf("%s: %v, want %v %q", what, err, code, msg)
	}
}

// async runs f on a goroutine; the channel gets its result.
func async[T any](f func() (T, error)) <-chan error {
	done := make(chan error, 1)
	go func() { _, err := f(); done <- err }()
	return done
}

// TestLock: Lock waits until the lock is free, under the caller's lease
// or one it grants; Unlock frees it; errors are etcd's.
func TestLock(t *testing.T) {
	_, cli := testServer(t, t.TempDir(), nil)
	c := ctx(t)
	lk := v3lockpb.NewLockClient(cli.ActiveConnection())
	first, err := lk.Lock(c, &v3lockpb.LockRequest{Name: []byte("/mylock")})
	if err != nil || !strings.HasPrefix(string(first.Key), "/mylock/") || first.Header.Revision != 2 {
		t.Fatalf("lock: %v %v", first, err)
	}
	// Lock without a lease grants one of concurrency's default TTL, which
	// nobody keeps alive.
	ttl, err := cli.TimeToLive(c, clientv3.LeaseID(leaseOf(t, cli, first.Key)))
	if err != nil || ttl.GrantedTTL != 60 {
		t.Fatalf("the lock's lease: %v %v", ttl, err)
	}
	lease, err := cli.Grant(c, 30)
	if err != nil {
		t.Fatal(err)
	}
	second := async(func() (*v3lockpb.LockResponse, error) {
		return lk.Lock(c, &v3lockpb.LockRequest{Name: []byte("/mylock"), Lease: int64(lease.ID)})
	})
	// The second waits for the first: its key is in line behind it.
	waitKeys(t, cli, "/mylock/", 2)
	select {
	case err := <-second:
		t.Fatalf("the second Lock returned while the first held the lock: %v", err)
	default:
	}
	un, err := lk.Unlock(c, &v3lockpb.UnlockRequest{Key: first.Key})
	if err != nil || un.Header.Revision != 4 {
		t.Fatalf("unlock: %v %v", un, err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the second Lock: %v", err)
	}
	_, err = lk.Lock(c, &v3lockpb.LockRequest{Name: []byte("/other"), Lease: 12345})
	wantStatus(t, "lock with an unknown lease", err, codes.Unknown, rpctypes.ErrLeaseNotFound.Error())
	cc, cancel := context.WithCancel(c)
	waiting := async(func() (*v3lockpb.LockResponse, error) {
		return lk.Lock(cc, &v3lockpb.LockRequest{Name: []byte("/mylock")})
	})
	waitKeys(t, cli, "/mylock/", 2)
	cancel()
	wantStatus(t, "a waiting Lock canceled", <-waiting, codes.Canceled, context.Canceled.Error())
}

// leaseOf is the lease a key is attached to.
func leaseOf(t *testing.T, cli *clientv3.Client, key []byte) int64 {
	t.Helper()
	g, err := cli.Get(ctx(t), string(key))
	if err != nil || len(g.Kvs) != 1 {
		t.Fatalf("get %s: %v %v", key, g, err)
	}
	return g.Kvs[0].Lease
}

// waitKeys waits, through a watch, until n keys are under prefix.
func waitKeys(t *testing.T, cli *clientv3.Client, prefix string, n int64) {
	t.Helper()
	c := ctx(t)
	g, err := cli.Get(c, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	wch := cli.Watch(c, prefix, clientv3.WithPrefix(), clientv3.WithRev(g.Header.Revision+1))
	for count := g.Count; count < n; {
		wr, ok := <-wch
		if !ok {
			t.Fatalf("waiting for %d keys under %s: the watch ended at %d", n, prefix, count)
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypePut && ev.IsCreate() {
				count++
			} else if ev.Type == clientv3.EventTypeDelete {
				count--
			}
		}
	}
}

// TestElection: Campaign waits until the caller leads, Leader and Observe
// show the leader, Proclaim changes its value, Resign hands over; errors
// are etcd's.
func TestElection(t *testing.T) {
	_, cli := testServer(t, t.TempDir(), nil)
	c := ctx(t)
	el := v3electionpb.NewElectionClient(cli.ActiveConnection())
	name := []byte("/election")
	_, err := el.Leader(c, &v3electionpb.LeaderRequest{Name: name})
	wantStatus(t, "leader of an empty election", err, codes.Unknown, "election: no leader")
	_, err = el.Proclaim(c, &v3electionpb.ProclaimRequest{Value: []byte("v")})
	wantStatus(t, "proclaim without a leader key", err, codes.Unknown, `"leader" field must be provided`)
	_, err = el.Resign(c, &v3electionpb.ResignRequest{})
	wantStatus(t, "resign without a leader key", err, codes.Unknown, `"leader" field must be provided`)

	obs, err := el.Observe(c, &v3electionpb.LeaderRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	won, err := el.Campaign(c, &v3electionpb.CampaignRequest{Name: name, Value: []byte("a")})
	if err != nil || won.Leader.Lease == 0 || string(won.Leader.Name) != "/election" || won.Leader.Rev != won.Header.Revision {
		t.Fatalf("campaign: %v %v", won, err)
	}
	if o, err := obs.Recv(); err != nil || string(o.Kv.Value) != "a" || string(o.Kv.Key) != string(won.Leader.Key) {
		t.Fatalf("observed: %v %v", o, err)
	}
	lead, err := el.Leader(c, &v3electionpb.LeaderRequest{Name: name})
	if err != nil || string(lead.Kv.Value) != "a" || lead.Header.Revision != won.Header.Revision {
		t.Fatalf("leader: %v %v", lead, err)
	}
	if _, err := el.Proclaim(c, &v3electionpb.ProclaimRequest{Leader: won.Leader, Value: []byte("a2")}); err != nil {
		t.Fatalf("proclaim: %v", err)
	}
	if o, err := obs.Recv(); err != nil || string(o.Kv.Value) != "a2" {
		t.Fatalf("observed after proclaim: %v %v", o, err)
	}
	second := make(chan *v3electionpb.CampaignResponse, 1)
	go func() {
		r, err := el.Campaign(c, &v3electionpb.CampaignRequest{Name: name, Value: []byte("b")})
		if err != nil {
			t.Errorf("the second campaign: %v", err)
		}
		second <- r
	}()
	waitKeys(t, cli, "/election/", 2)
	select {
	case r := <-second:
		t.Fatalf("the second campaign won while the first led: %v", r)
	default:
	}
	if _, err := el.Resign(c, &v3electionpb.ResignRequest{Leader: won.Leader}); err != nil {
		t.Fatalf("resign: %v", err)
	}
	if r := <-second; r == nil || r.Leader.Lease == won.Leader.Lease {
		t.Fatalf("the second campaign: %v", r)
	}
	if o, err := obs.Recv(); err != nil || string(o.Kv.Value) != "b" {
		t.Fatalf("observed after the hand-over: %v %v", o, err)
	}
	_, err = el.Proclaim(c, &v3electionpb.ProclaimRequest{Leader: won.Leader, Value: []byte("late")})
	wantStatus(t, "proclaim after resigning", err, codes.Unknown, "election: not leader")
}

// TestLockAsCaller: with auth on, Lock and Election act as the caller:
// its permissions apply, through gRPC and the gateway alike.
func TestLockAsCaller(t *testing.T) {
	s, root := testServer(t, t.TempDir(), func(c *Config) { c.BcryptCost = 4 })
	enableAuth(t, root)
	app := userClient(t, root.Endpoints(), "app", "apppw")
	c := ctx(t)
	lk := v3lockpb.NewLockClient(app.ActiveConnection())
	held, err := lk.Lock(c, &v3lockpb.LockRequest{Name: []byte("/app/lock")})
	if err != nil {
		t.Fatalf("lock within the user's keys: %v", err)
	}
	if _, err := lk.Unlock(c, &v3lockpb.UnlockRequest{Key: held.Key}); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	_, err = lk.Lock(c, &v3lockpb.LockRequest{Name: []byte("/other/lock")})
	wantStatus(t, "lock outside the user's keys", err, codes.Unknown, rpctypes.ErrPermissionDenied.Error())
	el := v3electionpb.NewElectionClient(app.ActiveConnection())
	_, err = el.Leader(c, &v3electionpb.LeaderRequest{Name: []byte("/other/e")})
	wantStatus(t, "leader outside the user's keys", err, codes.Unknown, rpctypes.ErrPermissionDenied.Error())

	// The gateway passes the caller's token on.
	addr := s.Addrs()[0]
	code, body := gatewayPost(t, addr, "/v3/lock/lock", `{"name":"`+b64("/app/gw")+`"}`, "")
	if code != http.StatusInternalServerError || !strings.Contains(body, "user name is empty") {
		t.Fatalf("lock through the gateway without a token: %d %s", code, body)
	}
	tok := gatewayToken(t, addr)
	if code, body := gatewayPost(t, addr, "/v3/lock/lock", `{"name":"`+b64("/app/gw")+`"}`, tok); code != http.StatusOK || !strings.Contains(body, `"key":"`) {
		t.Fatalf("lock through the gateway: %d %s", code, body)
	}
	if code, body := gatewayPost(t, addr, "/v3/election/campaign", `{"name":"`+b64("/app/e")+`","value":"`+b64("v")+`"}`, tok); code != http.StatusOK || !strings.Contains(body, `"leader":{"name":"`+b64("/app/e")+`"`) {
		t.Fatalf("campaign through the gateway: %d %s", code, body)
	}
	if code, body := gatewayPost(t, addr, "/v3/election/leader", `{"name":"`+b64("/app/none")+`"}`, tok); code != http.StatusInternalServerError || !strings.Contains(body, `"message":"election: no leader"`) {
		t.Fatalf("leader through the gateway: %d %s", code, body)
	}
	if code, body := gatewayPost(t, addr, "/v3/election/proclaim", `{"value":"`+b64("v")+`"}`, tok); !strings.Contains(body, `"message":"\"leader\" field must be provided"`) {
		t.Fatalf("proclaim through the gateway: %d %s", code, body)
	}
}

// gatewayToken authenticates app through the gateway.
func gatewayToken(t *testing.T, addr string) string {
	t.Helper()
	code, body := gatewayPost(t, addr, "/v3/auth/authenticate", `{"name":"app","password":"apppw"}`, "")
	_, tok, ok := strings.Cut(body, `"token":"`)
	tok, _, _ = strings.Cut(tok, `"`)
	if code != http.StatusOK || !ok || tok == "" {
		t.Fatalf("authenticate: %d %s", code, body)
	}
	return tok
}

// TestObserveGateway: /v3/election/observe streams the leader as
// {"result": ...} lines, as etcd's gateway does.
func TestObserveGateway(t *testing.T) {
	s, cli := testServer(t, t.TempDir(), nil)
	c := ctx(t)
	el := v3electionpb.NewElectionClient(cli.ActiveConnection())
	if _, err := el.Campaign(c, &v3electionpb.CampaignRequest{Name: []byte("/e"), Value: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(c, http.MethodPost, "http://"+s.Addrs()[0]+"/v3/election/observe", strings.NewReader(`{"name":"`+b64("/e")+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	n, err := resp.Body.Read(buf)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if line := string(buf[:n]); !strings.HasPrefix(line, `{"result":{"header":`) || !strings.Contains(line, `"value":"`+b64("v1")+`"`) {
		t.Fatalf("observe through the gateway: %q", line)
	}
}

// TestLockWatchesAsCaller: the watches Lock waits with run as their
// caller, each caller's on streams of its own. Were they to share one
// stream (clientv3 shares them among contexts alike), root's wait would
// ride on app's stream, whose token an auth change has made stale, and
// be refused.
func TestLockWatchesAsCaller(t *testing.T) {
	_, anon := testServer(t, t.TempDir(), func(c *Config) { c.BcryptCost = 4 })
	enableAuth(t, anon)
	root := userClient(t, anon.Endpoints(), "root", "pw")
	app := userClient(t, anon.Endpoints(), "app", "apppw")
	c := ctx(t)
	rootLock := v3lockpb.NewLockClient(root.ActiveConnection())
	held, err := rootLock.Lock(c, &v3lockpb.LockRequest{Name: []byte("/app/l")})
	if err != nil {
		t.Fatal(err)
	}
	appWaits := async(func() (*v3lockpb.LockResponse, error) {
		return v3lockpb.NewLockClient(app.ActiveConnection()).Lock(c, &v3lockpb.LockRequest{Name: []byte("/app/l")})
	})
	waitKeys(t, root, "/app/l/", 2)
	if _, err := root.UserRevokeRole(c, "app", "app"); err != nil {
		t.Fatal(err)
	}
	// The revoke made every token older than the auth store: root logs
	// in again (app's stream keeps its old token).
	root = userClient(t, anon.Endpoints(), "root", "pw")
	rootLock = v3lockpb.NewLockClient(root.ActiveConnection())
	rootWaits := make(chan error, 1)
	go func() {
		_, err := rootLock.Lock(c, &v3lockpb.LockRequest{Name: []byte("/app/l")})
		rootWaits <- err
	}()
	waitKeys(t, root, "/app/l/", 3)
	g, err := root.Get(c, "/app/l/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil || len(g.Kvs) != 3 {
		t.Fatalf("the lock's keys: %v %v", g, err)
	}
	// Free the lock for root's waiter: app's key, then root's first.
	for _, k := range [][]byte{g.Kvs[1].Key, held.Key} {
		if _, err := rootLock.Unlock(c, &v3lockpb.UnlockRequest{Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-rootWaits; err != nil {
		t.Fatalf("root's waiting Lock: %v", err)
	}
	if err := <-appWaits; err == nil {
		t.Fatal("app's Lock succeeded without permissions")
	}
}
