package tests

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/detcd/detcd/server"
)

// TestClusterDiff sends the same Cluster requests to an embedded etcd
// 3.7.3 and to an in-process detcd, one member each, over raw gRPC (clientv3
// checks peer URLs itself), and compares the answers: peer URLs that etcd
// refuses (no port, a path, another scheme, none), a learner's URLs as
// they are kept, the second voter of a one-member cluster, which the
// strict reconfiguration check lets in, and a third, which it refuses as
// the second never started.
func TestClusterDiff(t *testing.T) {
	eaddr, estop := startEmbeddedEtcd(t, true)
	daddr, dstop := startInProcDetcd(t, true)
	sides := []*side{dial(t, "etcd", eaddr, estop), dial(t, "detcd", daddr, dstop)}
	defer func() {
		for _, s := range sides {
			s.close()
		}
	}()
	nowhere := func() string { return loopbackURL(freePort(t)) }
	learnerURLs := []string{nowhere(), nowhere()}
	slices.Sort(learnerURLs)
	steps := []struct {
		name string
		req  *pb.MemberAddRequest
	}{
		{"no URLs", &pb.MemberAddRequest{}},
		{"no port", &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1"}}},
		{"no port, https", &pb.MemberAddRequest{PeerURLs: []string{"https://example.com"}}},
		{"a path", &pb.MemberAddRequest{PeerURLs: []string{nowhere() + "/peer"}}},
		{"a slash", &pb.MemberAddRequest{PeerURLs: []string{nowhere() + "/"}}},
		{"ftp", &pb.MemberAddRequest{PeerURLs: []string{"ftp://127.0.0.1:2380"}}},
		{"no scheme", &pb.MemberAddRequest{PeerURLs: []string{"127.0.0.1:2380"}}},
		{"one good, one without a port", &pb.MemberAddRequest{PeerURLs: []string{nowhere(), "http://127.0.0.1"}}},
		{"a learner, URLs unsorted and padded", &pb.MemberAddRequest{PeerURLs: []string{" " + learnerURLs[1] + " ", learnerURLs[0]}, IsLearner: true}},
		{"a second voter", &pb.MemberAddRequest{PeerURLs: []string{nowhere()}}},
		{"a third voter, the second never started", &pb.MemberAddRequest{PeerURLs: []string{nowhere()}}},
	}
	for _, s := range steps {
		var answers []string
		for _, sd := range sides {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := pb.NewClusterClient(sd.conn).MemberAdd(ctx, s.req)
			cancel()
			answers = append(answers, describeMemberAdd(resp, err))
		}
		if answers[0] != answers[1] {
			t.Errorf("member add, %s:\n  etcd:  %s\n  detcd: %s", s.name, answers[0], answers[1])
		}
	}
}

// describeMemberAdd is what of a MemberAdd answer both servers must agree
// on: the error's code and message, or the new member (ids aside) and how
// many members there are.
func describeMemberAdd(resp *pb.MemberAddResponse, err error) string {
	if err != nil {
		st, _ := status.FromError(err)
		return fmt.Sprintf("error %s: %s", st.Code(), st.Message())
	}
	m := resp.GetMember()
	return fmt.Sprintf("added %q learner=%v, %d members", m.GetPeerURLs(), m.GetIsLearner(), len(resp.GetMembers()))
}

// TestClusterAuthDiff: with auth on, requests sent to a follower that it
// hands on to the leader (or that need the leader) get the same answers
// from a 3-member etcd 3.7.3 and a 3-member detcd, as root and as a user
// without rights: membership changes, a promotion, alarms, leadership
// moves and lease keep-alives and time-to-live queries. detcd once failed
// root's forwarded ones with "user name is empty".
func TestClusterAuthDiff(t *testing.T) {
	etcd := followerEndpoint(t, startEmbeddedCluster(t, 3))
	detcd := followerEndpoint(t, startInProcCluster(t, 3))
	want, got := runClusterAuthScenario(t, etcd), runClusterAuthScenario(t, detcd)
	for i := range max(len(want), len(got)) {
		if w, g := at(want, i), at(got, i); w != g {
			t.Errorf("step %d:\n  etcd:  %s\n  detcd: %s", i, w, g)
		}
	}
}

// runClusterAuthScenario sets up root and a user "app" without roles
// through endpoint, turns auth on, and returns the answers to the
// scenario's requests, each as a normalized line.
func runClusterAuthScenario(t *testing.T, endpoint string) []string {
	ctx := ctxT(t, time.Minute)
	client := func(user, pass string) *clientv3.Client {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, Username: user, Password: pass,
			DialTimeout: authStepTimeout, Logger: zap.NewNop()})
		if err != nil {
			t.Fatalf("client as %q: %v", user, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	admin := client("", "")
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "pw"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "root"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "app", "apppw"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("auth setup on %s: %v", endpoint, err)
		}
	}
	root, app := client("root", "pw"), client("app", "apppw")
	st, err := root.Status(ctx, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	// A lease with a key app may not read, and one without keys (a
	// renewal needs write permission on the lease's keys).
	lease, err := root.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Put(ctx, "/secret", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	empty, err := root.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	nowhere := loopbackURL(freePort(t))
	var out []string
	var learner uint64
	for _, c := range []struct {
		name string
		cli  *clientv3.Client
	}{{"app", app}, {"root", root}} {
		step := func(what, answer string) { out = append(out, c.name+" "+what+": "+answer) }
		ml, err := c.cli.MemberList(ctx)
		step("member list", res(ml, err, func(r *clientv3.MemberListResponse) string { return fmt.Sprint(len(r.Members), " members") }))
		add, err := c.cli.MemberAddAsLearner(ctx, []string{nowhere})
		// Both refuse it while the member has not been connected to a
		// quorum for 5 s (the strict reconfiguration check).
		for deadline := time.Now().Add(30 * time.Second); isUnhealthy(err) && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			add, err = c.cli.MemberAddAsLearner(ctx, []string{nowhere})
		}
		step("learner add", res(add, err, func(r *clientv3.MemberAddResponse) string {
			learner = r.Member.ID
			return fmt.Sprint("added, learner ", r.Member.IsLearner)
		}))
		_, err = c.cli.MemberPromote(ctx, learner)
		step("promote", errStr(err))
		_, err = c.cli.MemberRemove(ctx, learner)
		step("remove", fmt.Sprint(err == nil, " ", errIf(err)))
		_, err = c.cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: st.Header.MemberId, Alarm: pb.AlarmType_NOSPACE})
		step("alarm disarm", fmt.Sprint(err == nil, " ", errIf(err)))
		_, err = c.cli.MoveLeader(ctx, st.Header.MemberId)
		step("move leader", errStr(err))
		ka, err := c.cli.KeepAliveOnce(ctx, empty.ID)
		step("keep-alive", res(ka, err, func(r *clientv3.LeaseKeepAliveResponse) string { return fmt.Sprint("ttl>0 ", r.TTL > 0) }))
		ttl, err := c.cli.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
		step("time-to-live", res(ttl, err, func(r *clientv3.LeaseTimeToLiveResponse) string { return fmt.Sprint(len(r.Keys), " keys") }))
	}
	return out
}

func isUnhealthy(err error) bool {
	return err != nil && rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCUnhealthy)
}

// errIf is errStr(err), "" for none.
func errIf(err error) string {
	if err == nil {
		return ""
	}
	return errStr(err)
}

// followerEndpoint waits for endpoints' cluster to elect a leader and
// returns the client endpoint of a member that is not it.
func followerEndpoint(t *testing.T, endpoints []string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, ep := range endpoints {
			conn, err := grpc.NewClient("passthrough:///"+strings.TrimPrefix(ep, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := pb.NewMaintenanceClient(conn).Status(ctx, &pb.StatusRequest{})
			cancel()
			conn.Close()
			if err == nil && st.Leader != 0 && st.Leader != st.Header.MemberId {
				return ep
			}
		}
	}
	t.Fatal("no follower with a leader")
	return ""
}

// startEmbeddedCluster starts n embedded etcd 3.7.3 members of one
// cluster in this process and returns their client URLs.
func startEmbeddedCluster(t *testing.T, n int) []string {
	t.Helper()
	clients, peers := clusterURLs(t, n)
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peers[i]))
	}
	members := make([]*embed.Etcd, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name, cfg.Dir = fmt.Sprintf("m%d", i), t.TempDir()
		cfg.ListenClientUrls = []url.URL{mustURL(t, clients[i])}
		cfg.AdvertiseClientUrls = cfg.ListenClientUrls
		cfg.ListenPeerUrls = []url.URL{mustURL(t, peers[i])}
		cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		// The members start together: each waits for the others.
		wg.Go(func() { members[i], errs[i] = embed.StartEtcd(cfg) })
	}
	wg.Wait()
	for i, e := range members {
		if errs[i] != nil {
			t.Fatalf("embedded etcd m%d: %v", i, errs[i])
		}
		t.Cleanup(e.Close)
	}
	for _, e := range members {
		select {
		case <-e.Server.ReadyNotify():
		case <-time.After(60 * time.Second):
			t.Fatal("embedded etcd cluster not ready after 60s")
		}
	}
	return clients
}

// startInProcCluster starts n in-process detcd members of one cluster and
// returns their client URLs.
func startInProcCluster(t *testing.T, n int) []string {
	t.Helper()
	clients, peers := clusterURLs(t, n)
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peers[i]))
	}
	for i := range n {
		cfg := server.DefaultConfig()
		cfg.Name, cfg.DataDir = fmt.Sprintf("m%d", i), t.TempDir()
		cfg.ListenClientURLs, cfg.AdvertiseClientURLs = []string{clients[i]}, []string{clients[i]}
		cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = []string{peers[i]}, []string{peers[i]}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.BcryptCost = bcrypt.MinCost
		cfg.Logger = quietLogger()
		s, err := server.New(cfg)
		if err != nil {
			t.Fatalf("detcd m%d: %v", i, err)
		}
		if err := s.Start(); err != nil {
			t.Fatalf("detcd m%d: %v", i, err)
		}
		t.Cleanup(func() { s.Stop() })
	}
	return clients
}

// clusterURLs are n members' client and peer URLs on free loopback ports.
func clusterURLs(t *testing.T, n int) (clients, peers []string) {
	for range n {
		clients = append(clients, loopbackURL(freePort(t)))
		peers = append(peers, loopbackURL(freePort(t)))
	}
	return clients, peers
}
