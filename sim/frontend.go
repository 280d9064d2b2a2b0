package sim

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/grpcsvc"
)

// startFrontend puts etcd's services on the member's driver, as the
// server does: its clients' calls run grpcsvc's handlers and the
// driver's Frontend, as tasks in the world.
func (m *member) startFrontend() error {
	m.waits = map[uint64]*signal{}
	rt := &taskRuntime{m: m, inc: m.inc}
	fcfg := m.flags.FrontendConfig(memberIDFromURL)
	fcfg.SnapshotScratch = func() (string, func(), error) { return memFile(nil) }
	st := m.w.settings
	fcfg.WatchBatchGap, fcfg.WatchBusyOuts = time.Duration(st.WatchBatchGapUs)*time.Microsecond, st.WatchBusyOuts
	fcfg.WatchClock = watchClock{rt}
	var err error
	if fcfg.Tokens, err = m.flags.TokenProvider(readKeyFile, m.w.virtualClock); err != nil {
		return fmt.Errorf("%s: %w", m.name, err)
	}
	m.front = driver.NewFrontend(m.d, rt, fcfg)
	m.svc = newRegistry()
	// The health service Register returns is the server's answer to
	// gRPC health checks, which no simulated client makes.
	grpcsvc.Register(m.svc, m.front)
	m.inst.ServeGRPC(m.svc.services)
	m.guard = grpcsvc.NewGuard(m.front)
	m.monitorLeader()
	return nil
}

// memberIDFromURL is a new member's id in the world: the number in its
// peer URL's host (http://m4:2380 is member 4).
func memberIDFromURL(peerURLs []string) uint64 {
	if len(peerURLs) == 0 {
		return 0
	}
	u, err := url.Parse(peerURLs[0])
	if err != nil {
		return 0
	}
	id, _ := strconv.ParseUint(strings.TrimPrefix(u.Hostname(), "m"), 10, 64)
	return id
}

// rpc is one unary call of a member's services: the gRPC method's full
// name and its request.
type rpc func() (method string, req proto.Message)

// requestRPC is the call that serves r.
func requestRPC(r core.Request) rpc {
	return func() (string, proto.Message) { return route(r) }
}

// call runs r through the member's gRPC services, with r's token.
func (m *member) call(r core.Request, cb func(core.Response)) {
	m.invoke(r.Token, requestRPC(r), cb)
}

// invoke runs c through the member's gRPC services in a task, as a
// client's call reaches a handler: the guard's checks first (a learner
// refuses most calls), then the service method. cb gets, as an event of
// the world, the response (Msg) or etcd's gRPC error (Err).
func (m *member) invoke(token string, c rpc, cb func(core.Response)) {
	in := m.inst
	m.spawnCall(token, cb, func(ctx context.Context, svc *registry, guard *grpcsvc.Guard) (proto.Message, error) {
		return serve(ctx, svc, guard, in, c)
	})
}

// serviceCall is a call of a member's services sent with a token; cb
// gets its answer as an event of the world.
type serviceCall func(token string, cb func(core.Response))

// unaryCall is invoke for c, as a serviceCall.
func (m *member) unaryCall(c rpc) serviceCall {
	return func(token string, cb func(core.Response)) { m.invoke(token, c, cb) }
}

// errRefused is what a call to a member that does not serve clients gets
// (down, or not yet published): its listener refuses the connection, so
// the call reached no handler and did nothing, a definite failure that
// clientv3 retries on another endpoint. It wraps etcd's "server stopped"
// for the clients that only know etcd's errors.
var errRefused = errors.New("sim: connection refused")

// spawnCall runs handle in a task with the token in its context, as gRPC
// hands a call to a handler, and gives its answer to cb as an event.
func (m *member) spawnCall(token string, cb func(core.Response), handle func(context.Context, *registry, *grpcsvc.Guard) (proto.Message, error)) {
	m.spawnCallIn(context.Background(), token, cb, handle)
}

// spawnCallIn is spawnCall for a client whose call's context is ctx: the
// client cancels it when it hangs up.
func (m *member) spawnCallIn(ctx context.Context, token string, cb func(core.Response), handle func(context.Context, *registry, *grpcsvc.Guard) (proto.Message, error)) {
	w, svc, guard := m.w, m.svc, m.guard
	if !m.serving() {
		w.schedule(w.now, func() { cb(core.Response{Err: fmt.Errorf("%w: %w", errRefused, rpctypes.ErrGRPCStopped)}) })
		return
	}
	if token != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("token", token))
	}
	w.spawn(func() {
		msg, err := handle(ctx, svc, guard)
		w.schedule(w.now, func() { cb(core.Response{Msg: msg, Err: err}) })
	})
}

// errNoService: the simulator sent a request it has no service call for.
var errNoService = errors.New("sim: no service for the request")

// serve calls, through the metrics' interceptor and the guard, as the
// gRPC server chains them, the service method c names.
func serve(ctx context.Context, svc *registry, guard *grpcsvc.Guard, in *instruments, c rpc) (proto.Message, error) {
	method, req := c()
	if req == nil {
		return nil, fmt.Errorf("%w: %s", errNoService, method)
	}
	return svc.call(ctx, method, req, func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return in.unary(ctx, info.FullMethod, req, func(ctx context.Context, req any) (any, error) { return guard.Unary(ctx, info.FullMethod, req, h) })
	})
}

// route names the gRPC method for r and its request message.
func route(r core.Request) (string, proto.Message) {
	switch {
	case r.Range != nil:
		return "/etcdserverpb.KV/Range", r.Range
	case r.Put != nil:
		return "/etcdserverpb.KV/Put", r.Put
	case r.DeleteRange != nil:
		return "/etcdserverpb.KV/DeleteRange", r.DeleteRange
	case r.Txn != nil:
		return "/etcdserverpb.KV/Txn", r.Txn
	case r.Compaction != nil:
		return "/etcdserverpb.KV/Compact", r.Compaction
	case r.LeaseGrant != nil:
		return "/etcdserverpb.Lease/LeaseGrant", r.LeaseGrant
	case r.LeaseRevoke != nil:
		return "/etcdserverpb.Lease/LeaseRevoke", r.LeaseRevoke
	case r.LeaseTimeToLive != nil:
		return "/etcdserverpb.Lease/LeaseTimeToLive", r.LeaseTimeToLive
	case r.LeaseLeases:
		return "/etcdserverpb.Lease/LeaseLeases", &pb.LeaseLeasesRequest{}
	case r.MemberAdd != nil:
		return "/etcdserverpb.Cluster/MemberAdd", r.MemberAdd
	case r.MemberRemove != nil:
		return "/etcdserverpb.Cluster/MemberRemove", r.MemberRemove
	case r.MemberPromote != nil:
		return "/etcdserverpb.Cluster/MemberPromote", r.MemberPromote
	case r.MemberList != nil:
		return "/etcdserverpb.Cluster/MemberList", r.MemberList
	case r.Auth != nil:
		return routeAuth(r.Auth)
	}
	return "", nil
}

// routeAuth routes an auth change to its Auth service method.
func routeAuth(ir *pb.InternalRaftRequest) (string, proto.Message) {
	const p = "/etcdserverpb.Auth/"
	switch {
	case ir.Authenticate != nil:
		req := &pb.AuthenticateRequest{Name: ir.Authenticate.Name, Password: ir.Authenticate.Password}
		return p + "Authenticate", req
	case ir.AuthEnable != nil:
		return p + "AuthEnable", ir.AuthEnable
	case ir.AuthUserAdd != nil:
		return p + "UserAdd", ir.AuthUserAdd
	case ir.AuthUserDelete != nil:
		return p + "UserDelete", ir.AuthUserDelete
	case ir.AuthUserChangePassword != nil:
		return p + "UserChangePassword", ir.AuthUserChangePassword
	case ir.AuthRoleAdd != nil:
		return p + "RoleAdd", ir.AuthRoleAdd
	case ir.AuthRoleDelete != nil:
		return p + "RoleDelete", ir.AuthRoleDelete
	case ir.AuthRoleGrantPermission != nil:
		return p + "RoleGrantPermission", ir.AuthRoleGrantPermission
	case ir.AuthRoleRevokePermission != nil:
		return p + "RoleRevokePermission", ir.AuthRoleRevokePermission
	case ir.AuthUserGrantRole != nil:
		return p + "UserGrantRole", ir.AuthUserGrantRole
	case ir.AuthUserRevokeRole != nil:
		return p + "UserRevokeRole", ir.AuthUserRevokeRole
	}
	return routeAuthRead(ir)
}

// routeAuthRead routes a read of the auth store to its Auth service
// method.
func routeAuthRead(ir *pb.InternalRaftRequest) (string, proto.Message) {
	const p = "/etcdserverpb.Auth/"
	switch {
	case ir.AuthUserGet != nil:
		return p + "UserGet", ir.AuthUserGet
	case ir.AuthUserList != nil:
		return p + "UserList", ir.AuthUserList
	case ir.AuthRoleGet != nil:
		return p + "RoleGet", ir.AuthRoleGet
	case ir.AuthRoleList != nil:
		return p + "RoleList", ir.AuthRoleList
	case ir.AuthStatus != nil:
		return p + "AuthStatus", ir.AuthStatus
	}
	return "", nil
}

// watchClock is a member's time as its watch streams' batching sees it
// (driver.Clock): the member's local clock, and waits in virtual time as
// the handler's task.
type watchClock struct{ rt *taskRuntime }

func (c watchClock) Now() time.Time { return time.UnixMicro(c.rt.m.clock.local(c.rt.m.w.now)) }

func (c watchClock) Sleep(ctx context.Context, d time.Duration) error {
	sig := c.rt.NewSignal()
	m := c.rt.m
	m.w.after(d.Microseconds(), m.event(sig.Fire)) // held back while paused, as its handlers are
	return sig.Wait(ctx)
}
