package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// freePorts returns n free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

type testCluster struct {
	t       *testing.T
	cfgs    []Config
	servers []*Server
}

func newTestCluster(t *testing.T, n int) *testCluster {
	return newTestClusterWith(t, n, "http", nil)
}

// newTestClusterWith starts n members whose peer URLs have the scheme
// given, with mod applied to each member's configuration.
func newTestClusterWith(t *testing.T, n int, peerScheme string, mod func(*Config)) *testCluster {
	return newTestClusterWithData(t, n, peerScheme, mod, nil)
}

// newTestClusterWithData is newTestClusterWith calling prepare with each
// member's configuration before the member starts.
func newTestClusterWithData(t *testing.T, n int, peerScheme string, mod func(*Config), prepare func(Config)) *testCluster {
	ports := freePorts(t, 2*n)
	tc := &testCluster{t: t}
	initial := ""
	for i := 0; i < n; i++ {
		if i > 0 {
			initial += ","
		}
		initial += fmt.Sprintf("m%d=%s://127.0.0.1:%d", i, peerScheme, ports[2*i+1])
	}
	for i := 0; i < n; i++ {
		cfg := DefaultConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.DataDir = t.TempDir()
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
		peer := fmt.Sprintf("%s://127.0.0.1:%d", peerScheme, ports[2*i+1])
		cfg.ListenClientURLs, cfg.AdvertiseClientURLs = []string{client}, []string{client}
		cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = []string{peer}, []string{peer}
		cfg.InitialCluster = initial
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if mod != nil {
			mod(&cfg)
		}
		if prepare != nil {
			prepare(cfg)
		}
		tc.cfgs = append(tc.cfgs, cfg)
		tc.servers = append(tc.servers, nil)
		tc.start(i)
	}
	t.Cleanup(func() {
		for _, s := range tc.servers {
			if s != nil {
				s.Stop()
			}
		}
	})
	return tc
}

func (tc *testCluster) start(i int) {
	tc.t.Helper()
	s, err := New(tc.cfgs[i])
	if err != nil {
		tc.t.Fatalf("member %d: %v", i, err)
	}
	if err := s.Start(); err != nil {
		tc.t.Fatalf("member %d: %v", i, err)
	}
	tc.servers[i] = s
}

func (tc *testCluster) stop(i int) {
	tc.servers[i].Stop()
	tc.servers[i] = nil
}

func (tc *testCluster) client(i int) *clientv3.Client {
	tc.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: tc.cfgs[i].AdvertiseClientURLs, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(func() { cli.Close() })
	return cli
}

// leader waits for the cluster to agree on a leader and returns its index.
func (tc *testCluster) leader() int {
	tc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		lead, agree := uint64(0), true
		for _, s := range tc.servers {
			if s == nil {
				continue
			}
			l := s.status.leader.Load()
			if l == 0 || lead != 0 && l != lead {
				agree = false
				break
			}
			lead = l
		}
		if agree && lead != 0 {
			for i, s := range tc.servers {
				if s != nil && s.node.ID() == lead {
					return i
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tc.t.Fatal("no leader")
	return -1
}

func TestThreeMemberCluster(t *testing.T) {
	tc := newTestCluster(t, 3)
	lead := tc.leader()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	follower := (lead + 1) % 3
	w := tc.client(follower)
	if _, err := w.Put(c, "k", "v1"); err != nil {
		t.Fatalf("put through a follower: %v", err)
	}
	r := tc.client((lead + 2) % 3)
	g, err := r.Get(c, "k")
	if err != nil || g.Count != 1 || string(g.Kvs[0].Value) != "v1" {
		t.Fatalf("linearizable get on another member: %v %v", g, err)
	}
	// Every member publishes its client URLs once it has started; the
	// one no client talked to may not have yet.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ml, err := r.MemberList(c)
		if err != nil || len(ml.Members) != 3 {
			t.Fatalf("member list: %v %v", ml, err)
		}
		if !slices.ContainsFunc(ml.Members, func(m *etcdserverpb.Member) bool { return len(m.ClientURLs) == 0 }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members never all published their client URLs: %v", ml)
		}
	}
	// Lose the leader: the others elect a new one and go on.
	tc.stop(lead)
	// A put in flight when the leader dies may time out, as with etcd; the
	// client tries again once a new leader is up.
	for attempt := 0; ; attempt++ {
		pc, pcancel := context.WithTimeout(c, 3*time.Second)
		_, err := w.Put(pc, "k", "v2")
		pcancel()
		if err == nil {
			break
		}
		if attempt == 10 {
			t.Fatalf("put after the leader stopped: %v", err)
		}
	}
	tc.leader()
	tc.start(lead)
	tc.leader()
	back := tc.client(lead)
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, err := back.Get(c, "k", clientv3.WithSerializable())
		if err == nil && g.Count == 1 && string(g.Kvs[0].Value) == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted member never caught up: %v %v", g, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Move the leadership to a chosen member.
	lead = tc.leader()
	target := tc.servers[(lead+1)%3].node.ID()
	if _, err := tc.client(lead).MoveLeader(c, target); err != nil {
		t.Fatalf("move leader: %v", err)
	}
	if got := tc.leader(); tc.servers[got].node.ID() != target {
		t.Fatalf("leader is %d after moving it to %x", got, target)
	}
}

// TestMemberAddJoinRestart adds a learner through the Cluster API, starts
// it with --initial-cluster-state existing, promotes it once it has
// caught up, and restarts it. The chaos suite found both halves broken: the
// joining member could not answer the leader before it had applied a
// membership of its own, and after a restart it published a nameless
// member.
func TestMemberAddJoinRestart(t *testing.T) {
	tc := newTestCluster(t, 3)
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli := tc.client(tc.leader())
	for i := 0; i < 20; i++ {
		if _, err := cli.Put(c, fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	ports := freePorts(t, 2)
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	var added *clientv3.MemberAddResponse
	// The leader refuses additions until it has been in touch with a
	// quorum for 5 s, as etcd's strict reconfiguration check does.
	err := retryWhile(t, "member add", func() (err error) {
		added, err = cli.MemberAddAsLearner(c, []string{peer})
		return err
	}, rpctypes.ErrGRPCUnhealthy)
	if err != nil {
		t.Fatalf("member add: %v", err)
	}
	tc.join("m3", client, peer)
	checkLearner(t, c, tc.client(3), client)

	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := cli.MemberPromote(c, added.Member.ID)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the learner was never promoted: %v", err)
		}
	}
	waitPublished := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			ml, err := cli.MemberList(c)
			if err == nil && slices.ContainsFunc(ml.Members, func(m *etcdserverpb.Member) bool {
				return m.ID == added.Member.ID && m.Name == "m3" && slices.Equal(m.ClientURLs, []string{client}) && !m.IsLearner
			}) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the new member is not listed with its name and client URL: %v %v", what, ml, err)
			}
		}
	}
	waitPublished("after joining")
	tc.stop(3)
	tc.start(3)
	waitPublished("after a restart")
	g, err := tc.client(3).Get(c, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || g.Count != 20 {
		t.Fatalf("a linearizable read on the new member: %v %v", g, err)
	}
}

// join starts a member added with MemberAdd, as etcd's
// --initial-cluster-state existing does, and returns its index.
func (tc *testCluster) join(name, client, peer string, mods ...func(*Config)) int {
	tc.t.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.DataDir = name, tc.t.TempDir()
	cfg.ListenClientURLs, cfg.AdvertiseClientURLs = []string{client}, []string{client}
	cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs = []string{peer}, []string{peer}
	cfg.InitialCluster = tc.cfgs[0].InitialCluster + "," + name + "=" + peer
	cfg.InitialClusterState = "existing"
	cfg.Logger = tc.cfgs[0].Logger
	cfg.BcryptCost = tc.cfgs[0].BcryptCost
	for _, mod := range mods {
		mod(&cfg)
	}
	tc.cfgs = append(tc.cfgs, cfg)
	tc.servers = append(tc.servers, nil)
	i := len(tc.servers) - 1
	tc.start(i)
	return i
}

// checkLearner checks that a learner serves what etcd's learners serve
// (Status, serializable ranges) and refuses the rest.
func checkLearner(t *testing.T, c context.Context, cli *clientv3.Client, endpoint string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := cli.Status(c, endpoint)
		if err == nil && st.IsLearner {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the learner never says it is one: %v %v", st, err)
		}
	}
	if _, err := cli.Get(c, "k0", clientv3.WithSerializable()); err != nil {
		t.Errorf("serializable get on a learner: %v", err)
	}
	if _, err := cli.Get(c, "k0"); err == nil || rpctypes.ErrorDesc(err) != rpctypes.ErrorDesc(rpctypes.ErrGRPCNotSupportedForLearner) {
		t.Errorf("linearizable get on a learner: %v, want %v", err, rpctypes.ErrGRPCNotSupportedForLearner)
	}
	if _, err := cli.Put(c, "on-learner", "v"); err == nil || rpctypes.ErrorDesc(err) != rpctypes.ErrorDesc(rpctypes.ErrGRPCNotSupportedForLearner) {
		t.Errorf("put on a learner: %v, want %v", err, rpctypes.ErrGRPCNotSupportedForLearner)
	}
}

// TestRequireLeader: a member that lost its leader refuses requests that
// require one (clientv3.WithRequireLeader) with etcd's "no leader", and
// ends such watch streams with it, so that clients move elsewhere.
func TestRequireLeader(t *testing.T) {
	tc := newTestCluster(t, 3)
	lead := tc.leader()
	keep := (lead + 1) % 3
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli := tc.client(keep)
	rc := clientv3.WithRequireLeader(c)
	if _, err := cli.Put(rc, "a", "1"); err != nil {
		t.Fatalf("put with a leader: %v", err)
	}
	wch := cli.Watch(rc, "a")
	for i := range 3 {
		if i != keep {
			tc.stop(i)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pc, pcancel := context.WithTimeout(rc, 2*time.Second)
		_, err := cli.Put(pc, "a", "2")
		pcancel()
		if err != nil && err.Error() == rpctypes.ErrNoLeader.Error() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("put without a leader: %v, want %v", err, rpctypes.ErrNoLeader)
		}
	}
	select {
	case wr, ok := <-wch:
		if !ok || wr.Err() == nil || wr.Err().Error() != rpctypes.ErrNoLeader.Error() {
			t.Fatalf("watch without a leader: open %v, %v, want %v", ok, wr.Err(), rpctypes.ErrNoLeader)
		}
	case <-c.Done():
		t.Fatal("the watch that requires a leader never ended")
	}
}
