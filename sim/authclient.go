package sim

import (
	"fmt"
	"math/rand/v2"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
)

// authClient plays an administrator changing users, roles and
// permissions over a few names, through any member, while the other
// clients work: the auth store must come out the same on every member,
// whatever the faults (the convergence check compares it), through
// restarts, checkpoints and snapshots. It never enables auth, which would
// refuse the other clients' requests. With auth on, it also reads the
// auth store (authreads.go).
type authClient struct {
	w   *World
	id  int
	rng *rand.Rand
	seq int
	// login is the administrator's session as root, with auth on.
	login *login
}

// authNamesMax is how many users, roles and keys the client picks from:
// few, so that its requests collide and fail as often as they succeed.
const authNamesMax = 4

func newAuthClient(w *World, id int) *authClient {
	return &authClient{w: w, id: id, rng: w.child(), login: newLogin(rootUser)}
}

func (c *authClient) start() { c.w.after(c.w.between(0, 1_000_000), c.issue) }

func (c *authClient) issue() {
	w := c.w
	if w.stopping {
		return
	}
	c.seq++
	live := w.live()
	m := live[c.rng.IntN(len(live))]
	if c.readsNow() {
		w.after(w.settings.Net.LatencyMinUs, m.event(func() { c.sendRead(m) }))
	} else {
		r := core.Request{Auth: c.next()}
		w.after(w.settings.Net.LatencyMinUs, m.event(func() {
			w.callAs(m, c.login, r, func(core.Response) {})
		}))
	}
	w.after(200_000+c.rng.Int64N(800_000), c.issue)
}

// next draws one auth change; with auth on, half of them change the
// limited users' permissions.
func (c *authClient) next() *pb.InternalRaftRequest {
	if c.w.perm != nil && c.rng.IntN(2) == 0 {
		return c.w.perm.nextChange(c.rng)
	}
	user := fmt.Sprintf("u%d", c.rng.IntN(authNamesMax))
	role := fmt.Sprintf("r%d", c.rng.IntN(authNamesMax))
	key := []byte(fmt.Sprintf("k%d", c.rng.IntN(authNamesMax)))
	var end []byte
	if c.rng.IntN(2) == 0 {
		end = []byte(fmt.Sprintf("k%d", authNamesMax))
	}
	// Hashes are opaque to core: any bytes do.
	hash := fmt.Sprintf("hash-%d-%d", c.id, c.seq)
	switch c.rng.IntN(9) {
	case 0:
		return &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: user, HashedPassword: hash}}
	case 1:
		return &pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: user}}
	case 2:
		return &pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: user, HashedPassword: hash}}
	case 3:
		return &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: role}}
	case 4:
		return &pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: role}}
	case 5:
		perm := &authpb.Permission{PermType: authpb.Permission_Type(c.rng.IntN(3)), Key: key, RangeEnd: end}
		return &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: role, Perm: perm}}
	case 6:
		return &pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: role, Key: key, RangeEnd: end}}
	case 7:
		return &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: user, Role: role}}
	}
	return &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: user, Role: role}}
}
