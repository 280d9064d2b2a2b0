package core_test

import (
	cryptorand "crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// run carries out one interaction command and returns what it printed.
func (e *env) run(line string) string {
	e.t.Helper()
	cmd, args, err := datadriven.ParseLine(line)
	if err != nil {
		e.t.Fatalf("%s: %v", line, err)
	}
	return e.handle(e.t, &datadriven.TestData{Pos: line, Cmd: cmd, CmdArgs: args})
}

// tickAll advances every running member by n ticks, settling after each.
func (e *env) tickAll(n int) {
	for range n {
		for _, id := range e.allIDs() {
			if e.members[id].up {
				e.run(fmt.Sprintf("tick %d", id))
			}
		}
		e.run("stabilize")
	}
}

// answer carries out a request command and returns its response as the
// transcripts print it, without its id.
func (e *env) answer(request string) string {
	e.t.Helper()
	e.run(request)
	return e.await(e.nextReq)
}

// send hands member to a request and returns its response as answer does.
func (e *env) send(to uint64, r core.Request) string {
	e.t.Helper()
	return e.await(e.submit(e.up(to), r))
}

// await settles the cluster, ticking, until request id is answered.
func (e *env) await(id core.RequestID) string {
	e.t.Helper()
	prefix := fmt.Sprintf("#%d ", id)
	for range 3 * e.requestTimeout {
		out := e.run("stabilize")
		for line := range strings.SplitSeq(out, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
				return rest
			}
		}
		e.tickAll(1)
	}
	e.t.Fatalf("request %d: no answer", id)
	return ""
}

// TestStrictReconfigCheck: with etcd's strict reconfiguration check, a
// voter is added or removed only if a quorum of started members remains,
// and a member (learner or voter) is added or a voter that is up removed
// only if the leader has been connected to a quorum for etcd's health
// interval (5 s, 50 ticks of 100 ms); a learner's removal is not checked,
// followers ask the leader, a new leader counts the followers it was in
// contact with before its election, and the check can be turned off.
func TestStrictReconfigCheck(t *testing.T) {
	const (
		unhealthy  = "error: core: unhealthy cluster"
		notStarted = "error: core: re-configuration failed due to not enough started members"
		health     = 50
	)
	type step struct {
		do, want string // want is a prefix of the answer
	}
	for _, tc := range []struct {
		name  string
		setup string
		steps []step
	}{{
		name: "add",
		steps: []step{
			// Just elected: the leader has not heard from its followers
			// for the health interval yet.
			{"request 1 member-add 4", unhealthy},
			{"request 2 member-add 4", unhealthy},
			{"tick-all", ""},
			{"request 1 member-add 4", "member-add id=4"},
			// 4 never starts: 3 of 4 voters started, 3 connected.
			{"request 2 member-add 5", "member-add id=5"},
			// 3 of 5 started: a sixth would need 4; and of 6, 4
			// would have to be connected.
			{"request 2 member-add 6", notStarted},
			{"request 1 member-add 6", notStarted},
			{"request 2 member-add 6 learner", unhealthy},
			// Without 2, 2 of 4 would be started.
			{"request 3 member-remove 2", notStarted},
			// 4 and 5 are down: removing them is safe.
			{"request 3 member-remove 5", "member-remove"},
		},
	}, {
		name: "remove",
		steps: []step{
			{"tick-all", ""},
			{"crash 3", ""},
			{"tick-all 11", ""},
			// 1 and 2 are all that is up: without either, no quorum.
			{"request 1 member-remove 2", unhealthy},
			{"request 2 member-remove 1", unhealthy},
			{"request 2 member-remove 2", unhealthy},
			{"request 2 member-add 4", unhealthy},
			// 3 is down: not part of the active quorum.
			{"request 2 member-remove 3", "member-remove"},
		},
	}, {
		name: "learners",
		steps: []step{
			// etcd checks the connected quorum for a learner too.
			{"request 2 member-add 4 learner", unhealthy},
			{"tick-all", ""},
			{"request 2 member-add 4 learner", "member-add id=4"},
			{"crash 3", ""},
			{"tick-all 11", ""},
			// A learner's removal is not checked.
			{"request 2 member-remove 4", "member-remove"},
		},
	}, {
		// Followers send each other link heartbeats, as etcd's members
		// keep streams open to every peer: the follower elected when
		// the leader goes down has been in contact with the other one
		// all along, so the old leader can be replaced at once.
		name: "a new leader",
		steps: []step{
			{"tick-all", ""},
			{"crash 1", ""},
			{"tick-all 30", ""},
			{"request 2 member-remove 1", "member-remove"},
			{"request 3 member-add 4", "member-add id=4"},
		},
	}, {
		name:  "off: add",
		setup: " strict-reconfig=0",
		steps: []step{
			{"request 2 member-add 4", "member-add id=4"},
		},
	}, {
		name:  "off: remove",
		setup: " strict-reconfig=0",
		steps: []step{
			{"tick-all", ""},
			{"crash 3", ""},
			{"tick-all 11", ""},
			{"request 2 member-remove 2", "member-remove"},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			prev := cryptorand.Reader
			defer func() { cryptorand.Reader = prev }()
			e := &env{t: t, members: map[uint64]*imember{}}
			e.run("add-members 3 elect=1" + tc.setup)
			for _, s := range tc.steps {
				switch {
				case strings.HasPrefix(s.do, "tick-all"):
					n := health
					fmt.Sscanf(s.do, "tick-all %d", &n)
					e.tickAll(n)
				case strings.HasPrefix(s.do, "request"):
					if got := e.answer(s.do); !strings.HasPrefix(got, s.want) {
						t.Fatalf("%s: %s, want %s", s.do, got, s.want)
					}
				default:
					e.run(s.do)
				}
			}
		})
	}
}

// TestForwardedRequestKeepsCaller: with auth on, what a follower forwards
// to the leader (lease keep-alives and time-to-live queries, promotions,
// voter additions and removals) is checked there as the client who made
// it: root's requests go through, another user's are refused, and none
// fails for want of a user.
func TestForwardedRequestKeepsCaller(t *testing.T) {
	prev := cryptorand.Reader
	defer func() { cryptorand.Reader = prev }()
	e := &env{t: t, members: map[uint64]*imember{}}
	e.run("add-members 3 elect=1")
	for _, ir := range []*pb.InternalRaftRequest{
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", HashedPassword: "h"}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "root"}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "app", HashedPassword: "h"}},
		{AuthEnable: &pb.AuthEnableRequest{}},
	} {
		if got := e.send(1, core.Request{Auth: ir}); strings.HasPrefix(got, "error") {
			t.Fatalf("auth setup %v: %s", ir, got)
		}
	}
	e.tickAll(50) // the health interval, for the voter addition
	// Users as a checked token names them, issued after the setup.
	const rev = 1 << 20
	root := func(r core.Request) core.Request { r.TokenUser, r.TokenRevision = "root", rev; return r }
	app := func(r core.Request) core.Request { r.TokenUser, r.TokenRevision = "app", rev; return r }
	const denied = "error: auth: permission denied"
	grant := e.send(1, root(core.Request{LeaseGrant: &pb.LeaseGrantRequest{TTL: 60, ID: 7}}))
	if !strings.HasPrefix(grant, "lease-grant") {
		t.Fatalf("lease grant: %s", grant)
	}
	for _, tc := range []struct {
		name string
		r    core.Request
		want string // a prefix of the answer
	}{
		{"root keeps a lease alive", root(core.Request{LeaseKeepAlive: &pb.LeaseKeepAliveRequest{ID: 7}}), "lease-keepalive id=7 ttl=60"},
		{"app keeps a lease alive", app(core.Request{LeaseKeepAlive: &pb.LeaseKeepAliveRequest{ID: 7}}), "lease-keepalive id=7 ttl=60"},
		{"root asks a lease's time to live", root(core.Request{LeaseTimeToLive: &pb.LeaseTimeToLiveRequest{ID: 7}}), "lease-ttl id=7"},
		{"root adds a learner", root(core.Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://m4:2380"}, IsLearner: true}, NewMemberID: 4}), "member-add id=4"},
		{"app promotes it", app(core.Request{MemberPromote: &pb.MemberPromoteRequest{ID: 4}}), denied},
		// It never started: the leader, checking as root, finds it behind.
		{"root promotes it", root(core.Request{MemberPromote: &pb.MemberPromoteRequest{ID: 4}}), "error: core: can only promote a learner member which is in sync with leader"},
		{"app adds a voter", app(core.Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://m5:2380"}}, NewMemberID: 5}), denied},
		{"root adds a voter", root(core.Request{MemberAdd: &pb.MemberAddRequest{PeerURLs: []string{"http://m5:2380"}}, NewMemberID: 5}), "member-add id=5"},
		{"app removes it", app(core.Request{MemberRemove: &pb.MemberRemoveRequest{ID: 5}}), denied},
		{"root removes it", root(core.Request{MemberRemove: &pb.MemberRemoveRequest{ID: 5}}), "member-remove"},
	} {
		if got := e.send(2, tc.r); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s through a follower: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestForwardedMemberChangeAppliedFirst: a follower answers a membership
// change it forwarded only once it has applied the change itself, as an
// etcd member does, so that the client's next request to it sees it: with
// the leader's answer in, but its log entries held back, no answer; with
// them, the answer after the entry is applied.
func TestForwardedMemberChangeAppliedFirst(t *testing.T) {
	prev := cryptorand.Reader
	defer func() { cryptorand.Reader = prev }()
	e := &env{t: t, members: map[uint64]*imember{}}
	e.run("add-members 3 elect=1")
	e.tickAll(50) // the health interval
	for _, tc := range []struct{ request, entry string }{
		{"request 2 member-add 4", "conf-change add 4"},
		{"request 2 member-remove 4", "conf-change remove 4"},
	} {
		e.run(tc.request)
		answer := fmt.Sprintf("#%d ", e.nextReq)
		e.out.Reset()
		for range 20 { // the change commits with 1 and 3; 2 gets only peer messages
			for _, id := range e.allIDs() {
				if m := e.members[id]; m.up {
					e.processReady(m)
					e.sync(m)
				}
			}
			e.deliver(func(env envelope) bool { return env.to != 2 || env.raft == nil }, false)
		}
		if early := e.out.String(); strings.Contains(early, answer) {
			t.Fatalf("%s: answered before the member applied the change:\n%s", tc.request, early)
		}
		if err := appliedBefore(e.run("stabilize"), 2, tc.entry, answer); err != nil {
			t.Errorf("%s: %v", tc.request, err)
		}
	}
}

// appliedBefore checks, in a stabilize transcript, that member applied
// entry before it gave an answer starting with answer.
func appliedBefore(out string, member int, entry, answer string) error {
	ready := fmt.Sprintf("> %d handling Ready", member)
	var section, part string
	applied := false
	for line := range strings.SplitSeq(out, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "> "):
			section = l
		case strings.HasSuffix(l, ":") || strings.HasPrefix(l, "Persist"):
			part = l
		case section == ready && part == "Applied:" && strings.HasSuffix(l, entry):
			applied = true
		case section == ready && strings.HasPrefix(l, answer):
			if !applied {
				return fmt.Errorf("answered (%s) before applying %s", l, entry)
			}
			return nil
		}
	}
	return fmt.Errorf("no answer %q", answer)
}
