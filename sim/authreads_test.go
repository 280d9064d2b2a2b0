package sim

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestAuthReadsChecked: administrators' reads of the auth store pass the
// check in a world with auth on; a user list that no state of the
// member's shows fails it, one its newest state shows passes.
func TestAuthReadsChecked(t *testing.T) {
	o := short(3)
	o.Duration, o.AuthClients, o.AuthOn = 5*time.Second, 2, "on"
	w := runPassingTwice(t, o)
	p := w.checks.perm
	var m *member
	for _, mm := range w.members {
		ss := p.byMember[mm.idx]
		if len(ss) > 0 && ss[len(ss)-1].state.pos == p.newest[len(p.newest)-1].state.pos {
			m = mm
		}
	}
	if m == nil {
		t.Fatal("no member has the newest auth state")
	}
	ss := p.byMember[m.idx]
	st := ss[len(ss)-1].state
	list := &pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}}
	had := len(w.checks.failures)
	p.authRead(m, w.now, list, &pb.AuthUserListResponse{Users: slices.Sorted(maps.Keys(st.roles))})
	if len(w.checks.failures) != had {
		t.Fatalf("the member's own user list: failures %v", w.checks.failures[had:])
	}
	p.authRead(m, w.now, list, &pb.AuthUserListResponse{Users: []string{"nobody"}})
	if got := w.checks.failures[had:]; len(got) != 1 || !strings.HasPrefix(got[0], "auth: ") {
		t.Errorf("a user list no state shows: failures %v, want the auth read check's", got)
	}
}
