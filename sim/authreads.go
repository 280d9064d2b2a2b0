package sim

import (
	"fmt"
	"maps"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
)

// Administrators' reads, with auth on: now and then an administrator
// looks at the auth store as `etcdctl user get|list`, `role get|list`
// and `auth status` do, through the Auth service. etcd sends them
// through raft, so each answer is the store as the member applied the
// read: the permission checker, which notes every auth state each member
// had, requires it to be one the member had between the call and the
// answer, no older than any auth change applied anywhere before the call.

// authReadShare is one in authReadShare of an administrator's calls
// that reads, with auth on.
const authReadShare = 4

// nextRead draws one read of the auth store.
func (c *authClient) nextRead() *pb.InternalRaftRequest {
	user := fmt.Sprintf("u%d", c.rng.IntN(authNamesMax))
	role := fmt.Sprintf("r%d", c.rng.IntN(authNamesMax))
	if c.rng.IntN(2) == 0 {
		user, role = permUser(c.rng.IntN(permUsersN)), permRole(c.rng.IntN(permRolesN))
	}
	switch c.rng.IntN(5) {
	case 0:
		return &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: user}}
	case 1:
		return &pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}}
	case 2:
		return &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: role}}
	case 3:
		return &pb.InternalRaftRequest{AuthRoleList: &pb.AuthRoleListRequest{}}
	}
	return &pb.InternalRaftRequest{AuthStatus: &pb.AuthStatusRequest{}}
}

// readsNow says whether the administrator's next call reads.
func (c *authClient) readsNow() bool {
	return c.w.perm != nil && c.rng.IntN(authReadShare) == 0
}

// authRead judges an answered auth read sent to m at call.
func (p *permChecker) authRead(m *member, call int64, ir *pb.InternalRaftRequest, resp proto.Message) {
	op := &Op{Member: m.idx, Call: call, Return: p.w.now}
	had := p.met(op, false)
	if len(had) == 0 {
		return // the member's states are not known: nothing to judge
	}
	// The states new enough for a linearizable read: none, if the
	// member had only states older than a change applied before the
	// call.
	for _, st := range p.met(op, true) {
		if st.shows(ir, resp) {
			return
		}
	}
	p.w.checks.fail("auth: %s answered %s with %s [%d,%d], which no auth state it had meanwhile (revisions %d to %d) at or after the newest applied before the call shows",
		m.name, describeAuthRead(ir), describeAuthAnswer(resp), op.Call, op.Return, had[0].pos.rev, had[len(had)-1].pos.rev)
}

// shows says whether resp is what st answers to the read ir.
func (st *permState) shows(ir *pb.InternalRaftRequest, resp proto.Message) bool {
	switch r := resp.(type) {
	case *pb.AuthUserGetResponse:
		roles, ok := st.roles[ir.AuthUserGet.Name]
		return ok && slices.Equal(r.Roles, roles)
	case *pb.AuthUserListResponse:
		return slices.Equal(r.Users, slices.Sorted(maps.Keys(st.roles)))
	case *pb.AuthRoleGetResponse:
		perms, ok := st.perms[ir.AuthRoleGet.Role]
		return ok && slices.EqualFunc(r.Perm, perms, func(a, b *authpb.Permission) bool { return proto.Equal(a, b) })
	case *pb.AuthRoleListResponse:
		return slices.Equal(r.Roles, slices.Sorted(maps.Keys(st.perms)))
	case *pb.AuthStatusResponse:
		return r.Enabled == st.pos.enabled && r.AuthRevision == st.pos.rev
	}
	return false
}

func describeAuthRead(ir *pb.InternalRaftRequest) string {
	switch {
	case ir.AuthUserGet != nil:
		return "user get " + ir.AuthUserGet.Name
	case ir.AuthUserList != nil:
		return "user list"
	case ir.AuthRoleGet != nil:
		return "role get " + ir.AuthRoleGet.Role
	case ir.AuthRoleList != nil:
		return "role list"
	}
	return "auth status"
}

func describeAuthAnswer(resp proto.Message) string {
	switch r := resp.(type) {
	case *pb.AuthUserGetResponse:
		return fmt.Sprintf("roles %v", r.Roles)
	case *pb.AuthUserListResponse:
		return fmt.Sprintf("users %v", r.Users)
	case *pb.AuthRoleGetResponse:
		return fmt.Sprintf("permissions %v", r.Perm)
	case *pb.AuthRoleListResponse:
		return fmt.Sprintf("roles %v", r.Roles)
	case *pb.AuthStatusResponse:
		return fmt.Sprintf("enabled %v revision %d", r.Enabled, r.AuthRevision)
	}
	return fmt.Sprintf("%T", resp)
}

// sendRead sends m an auth read as the administrator.
func (c *authClient) sendRead(m *member) {
	w, ir := c.w, c.nextRead()
	call := w.now
	w.callAs(m, c.login, core.Request{Auth: ir}, func(resp core.Response) {
		if resp.Err == nil && resp.Msg != nil {
			w.checks.perm.authRead(m, call, ir, resp.Msg)
		}
	})
}
