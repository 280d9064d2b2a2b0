package sim

import (
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/detcd/detcd/core"
)

// With auth on (Options.AuthOn), the world first sets up users as an
// operator would, through the Auth service: root, and an "app" user
// whose role may read and write every key; then it enables auth and
// starts the workload. Every client logs in (Authenticate, bcrypt and
// all) and sends its token with each call, as clientv3 does, keeping one
// token whichever member it talks to: a JWT is good at every member, a
// simple token at every member that applied the login (each assigns it
// as it applies, as etcd's do) and has not restarted since (they live in
// memory). A member that refuses the token makes the client log in
// again (clientv3 then retries the call; the simulated client counts the
// call failed and logs in before its next). Administrators and the
// liveness probe log in as root.

// The users the world sets up.
const (
	rootUser = "root"
	appUser  = "app"
	appRole  = "app"
)

// login is a client's session: its user and its token ("" until it logs
// in, and after a member refused the token).
type login struct {
	user  string
	token string
}

func newLogin(user string) *login { return &login{user: user} }

// password is a user's password in the world.
func password(user string) string { return user + "-secret" }

// forget drops the token: the member refused it.
func (l *login) forget() { l.token = "" }

// with calls fn with the client's token for m, logging in first when it
// has none; without auth it calls fn at once with no token. A failed
// login gives fn an error response instead.
func (w *World) with(m *member, l *login, fn func(token string, failed *core.Response)) {
	if !w.authOn || l == nil {
		fn("", nil)
		return
	}
	if l.token != "" {
		fn(l.token, nil)
		return
	}
	auth := core.Request{Auth: &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: l.user, Password: password(l.user)}}}
	m.call(auth, func(resp core.Response) {
		if errors.Is(resp.Err, rpctypes.ErrGRPCAuthNotEnabled) {
			// Not enabled (yet, or any more): no token needed.
			fn("", nil)
			return
		}
		if resp.Err != nil {
			w.trace.logf(w.now, "%s login on %s: %v", l.user, m.name, resp.Err)
			fn("", &core.Response{Err: fmt.Errorf("%w: %w", errNotSent, resp.Err)})
			return
		}
		l.token = resp.Msg.(*pb.AuthenticateResponse).Token
		fn(l.token, nil)
	})
}

// callAs sends r to m as l's user: it logs in first when it must, and
// forgets the token when m refuses it. cb gets the answer, or, when the
// login failed, a response whose error wraps errNotSent.
func (w *World) callAs(m *member, l *login, r core.Request, cb func(core.Response)) {
	w.invokeAs(m, l, requestRPC(r), cb)
}

// invokeAs is callAs for any unary call of m's services.
func (w *World) invokeAs(m *member, l *login, c rpc, cb func(core.Response)) {
	w.runAs(m, l, m.unaryCall(c), cb)
}

// runAs is invokeAs for any call of m's services, unary or a stream.
func (w *World) runAs(m *member, l *login, run serviceCall, cb func(core.Response)) {
	w.with(m, l, func(token string, failed *core.Response) {
		if failed != nil {
			cb(*failed)
			return
		}
		run(token, func(resp core.Response) {
			if l != nil && authRefused(resp.Err) {
				l.forget()
			}
			cb(resp)
		})
	})
}

// authRefused reports errors that say the request was refused for its
// credentials, before it did anything: the client logs in again.
func authRefused(err error) bool {
	for _, e := range authErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

var authErrors = []error{rpctypes.ErrGRPCInvalidAuthToken, rpctypes.ErrGRPCAuthOldRevision, rpctypes.ErrGRPCUserEmpty, rpctypes.ErrGRPCAuthFailed}

// authReason reports a watch's cancel reason that refuses its
// credentials.
func authReason(reason string) bool {
	for _, e := range authErrors {
		if reason == e.Error() || reason == rpctypes.ErrorDesc(e) {
			return true
		}
	}
	return false
}

// authSetup is the operator's setup, one step at a time, each retried
// until a member carries it out (an answer that it was already done
// counts: an earlier try may have succeeded unseen).
func (w *World) authSetup(done func()) {
	steps := []*pb.InternalRaftRequest{
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: rootUser, Password: password(rootUser)}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: rootUser, Role: "root"}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: appRole}},
		{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: appRole, Perm: everyKey()}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: appUser, Password: password(appUser)}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: appUser, Role: appRole}},
	}
	if w.perm != nil {
		steps = append(steps, w.perm.setup...)
	}
	steps = append(steps, &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
	attempt := 0
	var step func(i int)
	step = func(i int) {
		if i == len(steps) {
			w.trace.logf(w.now, "auth: set up and enabled")
			done()
			return
		}
		attempt++
		this := attempt
		retry := func(why string) {
			if attempt == this {
				w.trace.logf(w.now, "auth setup step %d: %s", i, why)
				attempt++
				w.after(200_000, func() { step(i) })
			}
		}
		live := w.live()
		m := live[w.faults.rng.IntN(len(live))]
		// A member that is down drops the call: the timeout retries.
		w.after(w.settings.ClientTimeoutUs, func() { retry("timeout") })
		m.event(func() {
			m.call(core.Request{Auth: steps[i]}, func(resp core.Response) {
				switch {
				case attempt != this:
				case resp.Err == nil || alreadyDone(resp.Err):
					attempt++
					step(i + 1)
				default:
					retry(fmt.Sprintf("%s: %v", m.name, resp.Err))
				}
			})
		})()
	}
	step(0)
}

// everyKey is a read-write permission over the whole key space.
func everyKey() *authpb.Permission {
	return &authpb.Permission{PermType: authpb.READWRITE, Key: []byte{0}, RangeEnd: []byte{0}}
}

// errNotSent: the client could not log in, so it never sent the request.
var errNotSent = errors.New("sim: login failed; request not sent")

func alreadyDone(err error) bool {
	for _, e := range []error{rpctypes.ErrGRPCUserAlreadyExist, rpctypes.ErrGRPCRoleAlreadyExist} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
