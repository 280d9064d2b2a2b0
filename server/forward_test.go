package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// isErr reports whether err is etcd's error want.
func isErr(err, want error) bool {
	return err != nil && rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(want)
}

// retryWhile calls f until it returns an error other than one of busy,
// and returns that (nil included); busy errors are what a healthy cluster
// answers only for a while (etcd's health interval, a learner catching
// up).
func retryWhile(t *testing.T, what string, f func() error, busy ...error) error {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		err = f()
		still := false
		for _, b := range busy {
			still = still || isErr(err, b)
		}
		if !still {
			return err
		}
	}
	t.Fatalf("%s: still %v", what, err)
	return err
}

// TestAuthForwardedAsCaller: with auth on, every request a follower hands
// on to the leader (a promotion, a voter's addition or removal, a lease
// keep-alive or time-to-live query, and what goes through raft) is
// checked as the client who made it: root's go through and another
// user's are refused with etcd's errors, as etcd does; none fails for
// want of a user ("auth: user name is empty" before the fix).
func TestAuthForwardedAsCaller(t *testing.T) {
	tc := newTestClusterWith(t, 3, "http", func(c *Config) { c.BcryptCost = 4 })
	lead := tc.leader()
	enableAuth(t, tc.client(lead))
	f := (lead + 1) % 3
	eps := tc.cfgs[f].AdvertiseClientURLs
	root := userClient(t, eps, "root", "pw")
	app := userClient(t, eps, "app", "apppw")
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	denied := func(what string, err error) {
		t.Helper()
		if !isErr(err, rpctypes.ErrGRPCPermissionDenied) {
			t.Errorf("%s as app through a follower: %v, want %v", what, err, rpctypes.ErrGRPCPermissionDenied)
		}
	}
	ok := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s as root through a follower: %v", what, err)
		}
	}

	// Cluster: a voter's addition and removal go to the leader.
	if _, err := app.MemberList(c); err != nil {
		t.Errorf("member list as app: %v", err)
	}
	ports := freePorts(t, 4)
	nowhere := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	_, err := app.MemberAdd(c, []string{nowhere})
	denied("member add", err)
	var added *clientv3.MemberAddResponse
	ok("member add", retryWhile(t, "member add", func() (err error) {
		added, err = root.MemberAdd(c, []string{nowhere})
		return err
	}, rpctypes.ErrGRPCUnhealthy))
	if added != nil {
		_, err = app.MemberRemove(c, added.Member.ID)
		denied("member remove", err)
		_, err = root.MemberRemove(c, added.Member.ID)
		ok("member remove", err)
	}

	// A learner's promotion goes to the leader.
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1]), fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	_, err = app.MemberAddAsLearner(c, []string{peer})
	denied("learner add", err)
	learner, err := root.MemberAddAsLearner(c, []string{peer})
	if err != nil {
		t.Fatalf("learner add as root: %v", err)
	}
	tc.join("m3", client, peer)
	_, err = app.MemberPromote(c, learner.Member.ID)
	denied("member promote", err)
	ok("member promote", retryWhile(t, "member promote", func() error {
		_, err := root.MemberPromote(c, learner.Member.ID)
		return err
	}, rpctypes.ErrGRPCLearnerNotReady))

	// Maintenance: alarms go through raft; only the leader moves the
	// leadership, but a user who may not is told so first.
	disarm := &clientv3.AlarmMember{MemberID: tc.servers[lead].node.ID(), Alarm: etcdserverpb.AlarmType_NOSPACE}
	_, err = app.AlarmDisarm(c, disarm)
	denied("alarm disarm", err)
	_, err = root.AlarmDisarm(c, disarm)
	ok("alarm disarm", err)
	target := tc.servers[lead].node.ID()
	_, err = app.MoveLeader(c, target)
	denied("move leader", err)
	if _, err = root.MoveLeader(c, target); !isErr(err, rpctypes.ErrGRPCNotLeader) {
		t.Errorf("move leader as root on a follower: %v, want %v", err, rpctypes.ErrGRPCNotLeader)
	}

	// Leases: keep-alives and time-to-live queries go to the leader.
	l, err := root.Grant(c, 60)
	if err != nil {
		t.Fatalf("lease grant as root: %v", err)
	}
	if _, err := root.Put(c, "/secret", "x", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	_, err = root.KeepAliveOnce(c, l.ID)
	ok("lease keep-alive", err)
	_, err = app.KeepAliveOnce(c, l.ID)
	denied("lease keep-alive of a key it may not write", err)
	free, err := root.Grant(c, 60)
	if err != nil {
		t.Fatalf("lease grant as root: %v", err)
	}
	if _, err := app.KeepAliveOnce(c, free.ID); err != nil { // no keys: no permission needed
		t.Errorf("lease keep-alive as app through a follower: %v", err)
	}
	_, err = root.TimeToLive(c, l.ID, clientv3.WithAttachedKeys())
	ok("lease time-to-live", err)
	_, err = app.TimeToLive(c, l.ID, clientv3.WithAttachedKeys())
	denied("lease time-to-live of a key it may not read", err)

	// Auth: through raft.
	_, err = app.UserAdd(c, "other", "pw")
	denied("user add", err)
	_, err = root.UserAdd(c, "other", "pw")
	ok("user add", err)
}
