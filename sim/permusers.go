package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Users with limited permissions, in worlds with auth on: besides root
// and app, the operator sets up roles p0, p1, ..., each granted read,
// write or readwrite over a few of the workload's keys, groups or spans
// of groups, and users v0, v1, ..., each holding one of them. Some
// clients work as those users, so that etcd refuses their requests now
// and then with ErrPermissionDenied, and the administrators grant and
// revoke the roles' permissions and the users' roles while they work.
// The permission checker (checks_perm.go) judges every answer.

// How many limited users and roles a world has, and how many
// permissions each role starts with at most.
const (
	permUsersN    = 3
	permRolesN    = 3
	permGrantsMax = 3
	permShare     = 3
)

func permUser(i int) string { return fmt.Sprintf("v%d", i) }
func permRole(i int) string { return fmt.Sprintf("p%d", i) }

// permWorld draws the limited users' setup and the administrators'
// changes to them.
type permWorld struct {
	rng      *rand.Rand
	settings Settings
	// setup are the operator's steps, before auth is enabled.
	setup []*pb.InternalRaftRequest
	// granted is what the administrators believe each role holds, for
	// their revokes to draw from; the auth store decides what it holds.
	granted [permRolesN][]*authpb.Permission
	// leasers counts the lease holders, whose keys some permissions
	// cover.
	leasers int
}

// newPermWorld draws the setup, the limited user each client sends one
// in permShare of its operations as, and the watchers (one in
// permShare) that watch as one.
func newPermWorld(w *World) *permWorld {
	p := &permWorld{rng: w.child(), settings: w.settings}
	for r := 0; r < permRolesN; r++ {
		p.setup = append(p.setup, &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: permRole(r)}})
		for n := 1 + p.rng.IntN(permGrantsMax); n > 0; n-- {
			p.setup = append(p.setup, p.grant(p.rng, r))
		}
	}
	for u := 0; u < permUsersN; u++ {
		p.setup = append(p.setup,
			&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: permUser(u), Password: password(permUser(u))}},
			&pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: permUser(u), Role: permRole(u % permRolesN)}})
	}
	for _, c := range w.clients {
		c.limited, c.limitedRng = newLogin(permUser(p.rng.IntN(permUsersN))), w.child()
	}
	for _, c := range w.watchers {
		if p.rng.IntN(permShare) == 0 {
			c.login = newLogin(permUser(p.rng.IntN(permUsersN)))
		}
	}
	// Drawn last, so that the draws above stay as they were.
	p.leasers = len(w.leasers)
	for _, c := range w.leasers {
		c.limited = newLogin(permUser(p.rng.IntN(permUsersN)))
	}
	for r := 0; r < permRolesN && p.leasers > 0; r++ {
		if p.rng.IntN(2) == 0 {
			p.setup = append(p.setup, p.grantLeaseKeys(p.rng, r))
		}
	}
	return p
}

// grantLeaseKeys draws a permission over one lease holder's keys, or
// every lease holder's, for role r, and notes it: the holders' lease
// requests as limited users need it (checks_leaseperm.go).
func (p *permWorld) grantLeaseKeys(rng *rand.Rand, r int) *pb.InternalRaftRequest {
	perm := &authpb.Permission{PermType: authpb.Permission_Type(rng.IntN(3)), Key: []byte("l/"), RangeEnd: []byte("l0")}
	if c := rng.IntN(p.leasers + 1); c < p.leasers {
		perm.Key, perm.RangeEnd = []byte(fmt.Sprintf("l/%d/", c)), []byte(fmt.Sprintf("l/%d0", c))
	}
	p.granted[r] = append(p.granted[r], perm)
	return &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: permRole(r), Perm: perm}}
}

// drawPerm draws a permission over one key, one group, a span of
// groups, or every key the workload writes.
func (p *permWorld) drawPerm(rng *rand.Rand) *authpb.Permission {
	s := p.settings
	perm := &authpb.Permission{PermType: authpb.Permission_Type(rng.IntN(3))}
	g := rng.IntN(s.KeyGroups)
	switch x := rng.IntN(10); {
	case x < 4:
		perm.Key = []byte(groupKey(g, rng.IntN(s.KeysPerGroup)))
	case x < 8:
		perm.Key, perm.RangeEnd = []byte(groupPrefix(g)), []byte(groupEnd(g))
	case x < 9:
		last := min(g+1+rng.IntN(3), s.KeyGroups-1)
		perm.Key, perm.RangeEnd = []byte(groupPrefix(g)), []byte(groupEnd(last))
	default:
		perm.Key, perm.RangeEnd = []byte("g"), []byte("h")
	}
	return perm
}

// grant draws a permission for role r and notes it.
func (p *permWorld) grant(rng *rand.Rand, r int) *pb.InternalRaftRequest {
	perm := p.drawPerm(rng)
	p.granted[r] = append(p.granted[r], perm)
	return &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: permRole(r), Perm: perm}}
}

// nextChange draws an administrator's change to the limited users:
// grant or revoke a role's permission, grant or revoke a user's role.
func (p *permWorld) nextChange(rng *rand.Rand) *pb.InternalRaftRequest {
	r, u := rng.IntN(permRolesN), rng.IntN(permUsersN)
	switch rng.IntN(4) {
	case 0:
		if p.leasers > 0 && rng.IntN(3) == 0 {
			return p.grantLeaseKeys(rng, r)
		}
		return p.grant(rng, r)
	case 1:
		if n := len(p.granted[r]); n > 0 {
			i := rng.IntN(n)
			perm := p.granted[r][i]
			p.granted[r] = slices.Delete(p.granted[r], i, i+1)
			return &pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: permRole(r), Key: perm.Key, RangeEnd: perm.RangeEnd}}
		}
		return p.grant(rng, r)
	case 2:
		return &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: permUser(u), Role: permRole(r)}}
	}
	return &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: permUser(u), Role: permRole(r)}}
}
