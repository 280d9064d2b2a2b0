package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detcd/detcd/core"
)

// TestStrictReconfigCheck: with a member down, etcd's default strict
// check refuses to add a member (the grown cluster would have fewer
// members up than a quorum) or to remove a voter that is up, with
// "unhealthy cluster", on the leader and on a follower alike, and lets
// the member that is down go; --strict-reconfig-check=false lets the
// removal through, as in etcd.
func TestStrictReconfigCheck(t *testing.T) {
	for _, strict := range []bool{true, false} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			tc := newTestClusterWith(t, 3, "http", func(c *Config) { c.StrictReconfigCheck = strict })
			lead := tc.leader()
			f, down := (lead+1)%3, (lead+2)%3
			c, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			leader, follower := tc.client(lead), tc.client(f)
			// All up: a learner comes (once the leader has been in
			// touch with the others for 5 s, if the check is on) and goes.
			var l *clientv3.MemberAddResponse
			err := retryWhile(t, "learner add", func() (err error) {
				l, err = follower.MemberAddAsLearner(c, []string{fmt.Sprintf("http://127.0.0.1:%d", freePorts(t, 1)[0])})
				return err
			}, rpctypes.ErrGRPCUnhealthy)
			if err != nil {
				t.Fatalf("learner add: %v", err)
			}
			// The follower answered once it applied the addition; the
			// leader may not have yet, and raft's leader drops a
			// configuration change proposed while another is unapplied
			// (etcd's as well: the proposal then times out). A
			// linearizable member list on the leader waits for it.
			if _, err := leader.MemberList(c); err != nil {
				t.Fatalf("member list: %v", err)
			}
			if _, err := follower.MemberRemove(c, l.Member.ID); err != nil {
				t.Fatalf("learner remove: %v", err)
			}
			downID := tc.servers[down].node.ID()
			tc.stop(down)
			nowhere := []string{fmt.Sprintf("http://127.0.0.1:%d", freePorts(t, 1)[0])}
			if strict {
				// The leader counts a member as down once it has not heard
				// from it for an election timeout; till then it lets a
				// learner in (which is taken out again).
				errStillUp := errors.New("the stopped member still counts as up")
				err := retryWhile(t, "the leader noticing the stopped member", func() error {
					l, err := leader.MemberAddAsLearner(c, []string{fmt.Sprintf("http://127.0.0.1:%d", freePorts(t, 1)[0])})
					if err != nil {
						return err
					}
					if _, err := leader.MemberRemove(c, l.Member.ID); err != nil {
						t.Fatalf("removing the learner: %v", err)
					}
					return errStillUp
				}, errStillUp)
				if !isErr(err, rpctypes.ErrGRPCUnhealthy) {
					t.Fatalf("a learner's addition with a member down: %v, want %v", err, rpctypes.ErrGRPCUnhealthy)
				}
				for _, cli := range [](func() error){
					func() error { _, err := leader.MemberAdd(c, nowhere); return err },
					func() error { _, err := follower.MemberAdd(c, nowhere); return err },
					func() error { _, err := leader.MemberRemove(c, tc.servers[f].node.ID()); return err },
					func() error { _, err := follower.MemberRemove(c, tc.servers[lead].node.ID()); return err },
				} {
					if err := cli(); !isErr(err, rpctypes.ErrGRPCUnhealthy) {
						t.Errorf("a voter change with a member down: %v, want %v", err, rpctypes.ErrGRPCUnhealthy)
					}
				}
				// The member that is down is no part of the active quorum.
				err = retryWhile(t, "removing the member that is down", func() error {
					_, err := follower.MemberRemove(c, downID)
					return err
				}, rpctypes.ErrGRPCUnhealthy)
				if err != nil {
					t.Errorf("removing the member that is down: %v", err)
				}
				return
			}
			if _, err := leader.MemberRemove(c, tc.servers[f].node.ID()); err != nil {
				t.Errorf("removing a member that is up, with another down, unchecked: %v", err)
			}
		})
	}
}

// TestMemberPeerURLs: a member whose peer URL has no port (or a path, or
// another scheme) is refused with etcd's "given member URLs are invalid",
// by MemberAdd and MemberUpdate; URLs are kept as etcd keeps them. The
// requests go through the raw gRPC API: clientv3 checks URLs itself.
func TestMemberPeerURLs(t *testing.T) {
	_, cli := testServer(t, t.TempDir(), nil)
	cluster := etcdserverpb.NewClusterClient(cli.ActiveConnection())
	c := ctx(t)
	for _, bad := range []string{"http://10.0.0.1", "https://example.com", "http://10.0.0.1:2380/peer", "ftp://10.0.0.1:2380", "10.0.0.1:2380"} {
		if _, err := cluster.MemberAdd(c, &etcdserverpb.MemberAddRequest{PeerURLs: []string{bad}, IsLearner: true}); !isErr(err, rpctypes.ErrGRPCMemberBadURLs) {
			t.Errorf("member add %q: %v, want %v", bad, err, rpctypes.ErrGRPCMemberBadURLs)
		}
	}
	ports := freePorts(t, 2)
	want := []string{fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])}
	slices.Sort(want)
	added, err := cluster.MemberAdd(c, &etcdserverpb.MemberAddRequest{PeerURLs: []string{" " + want[1], want[0]}, IsLearner: true})
	if err != nil {
		t.Fatalf("member add: %v", err)
	}
	if got := added.Member.PeerURLs; !slices.Equal(got, want) {
		t.Errorf("member added with peer URLs %q, want %q (trimmed and sorted, as etcd keeps them)", got, want)
	}
	update := &etcdserverpb.MemberUpdateRequest{ID: added.Member.ID, PeerURLs: []string{"http://127.0.0.1"}}
	if _, err := cluster.MemberUpdate(c, update); !isErr(err, rpctypes.ErrGRPCMemberBadURLs) {
		t.Errorf("member update to a URL without a port: %v, want %v", err, rpctypes.ErrGRPCMemberBadURLs)
	}
}

// TestRemovedMemberStops: a member removed while it was down learns it
// from its peers once it is back, which refuse its streams with etcd's
// 410 Gone, and stops, as etcd's does.
func TestRemovedMemberStops(t *testing.T) {
	tc := newTestCluster(t, 3)
	lead := tc.leader()
	gone := (lead + 1) % 3
	id := tc.servers[gone].node.ID()
	tc.stop(gone)
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := retryWhile(t, "removing the stopped member", func() error {
		_, err := tc.client(lead).MemberRemove(c, id)
		return err
	}, rpctypes.ErrGRPCUnhealthy)
	if err != nil {
		t.Fatalf("removing the stopped member: %v", err)
	}
	tc.start(gone)
	select {
	case err := <-tc.servers[gone].Fatal():
		if !errors.Is(err, core.ErrMemberRemoved) {
			t.Fatalf("the removed member stopped with %v, want %v", err, core.ErrMemberRemoved)
		}
	case <-c.Done():
		t.Fatal("the removed member never stopped")
	}
}
