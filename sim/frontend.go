package sim

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/grpcsvc"
)

// Limits the simulated members serve with: etcd's defaults.
const (
	simMaxTxnOps       = 128
	simMaxRequestBytes = 1536 * 1024
)

// startFrontend puts etcd's services on the member's driver, as the
// server does: its clients' calls run grpcsvc's handlers and the
// driver's Frontend, as tasks in the world.
func (m *member) startFrontend() {
	m.waits = map[uint64]*signal{}
	rt := &taskRuntime{m: m, inc: m.inc}
	m.front = driver.NewFrontend(m.d, rt, driver.FrontendConfig{
		MaxTxnOps: simMaxTxnOps, MaxRequestBytes: simMaxRequestBytes,
		// The lowest cost: the simulator hashes passwords by the
		// thousand, and the cost changes nothing it checks.
		BcryptCost: bcrypt.MinCost, Version: "3.7.3",
		NewMemberID: memberIDFromURL,
	})
	m.svc = grpcsvc.NewServices(m.front)
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

// call runs r through the member's gRPC services in a task, as a
// client's call reaches a handler; cb gets, as an event of the world, the
// response (Msg) or etcd's gRPC error (Err).
func (m *member) call(r core.Request, cb func(core.Response)) {
	w, svc := m.w, m.svc
	if !m.up || svc == nil {
		w.schedule(w.now, func() { cb(core.Response{Err: rpctypes.ErrGRPCStopped}) })
		return
	}
	w.spawn(func() {
		msg, err := serve(context.Background(), svc, r)
		w.schedule(w.now, func() { cb(core.Response{Msg: msg, Err: err}) })
	})
}

// answer turns a handler's typed answer into a message and an error
// (a nil pointer is no message).
func answer[T proto.Message](t T, err error) (proto.Message, error) {
	if err != nil {
		return nil, err
	}
	return t, nil
}

// errNoService: the simulator sent a request it has no service call for.
var errNoService = errors.New("sim: no service for the request")

// serve calls the service method that serves r.
func serve(ctx context.Context, svc *grpcsvc.Services, r core.Request) (proto.Message, error) {
	switch {
	case r.Range != nil:
		return answer(svc.KV.Range(ctx, r.Range))
	case r.Put != nil:
		return answer(svc.KV.Put(ctx, r.Put))
	case r.DeleteRange != nil:
		return answer(svc.KV.DeleteRange(ctx, r.DeleteRange))
	case r.Txn != nil:
		return answer(svc.KV.Txn(ctx, r.Txn))
	case r.Compaction != nil:
		return answer(svc.KV.Compact(ctx, r.Compaction))
	case r.LeaseGrant != nil:
		return answer(svc.Lease.LeaseGrant(ctx, r.LeaseGrant))
	case r.LeaseRevoke != nil:
		return answer(svc.Lease.LeaseRevoke(ctx, r.LeaseRevoke))
	case r.LeaseKeepAlive != nil:
		return answer(svc.Lease.KeepAliveOnce(ctx, r.LeaseKeepAlive))
	case r.LeaseTimeToLive != nil:
		return answer(svc.Lease.LeaseTimeToLive(ctx, r.LeaseTimeToLive))
	case r.MemberAdd != nil:
		return answer(svc.Cluster.MemberAdd(ctx, r.MemberAdd))
	case r.MemberRemove != nil:
		return answer(svc.Cluster.MemberRemove(ctx, r.MemberRemove))
	case r.MemberPromote != nil:
		return answer(svc.Cluster.MemberPromote(ctx, r.MemberPromote))
	case r.Auth != nil:
		return serveAuth(ctx, svc.Auth, r.Auth)
	}
	return nil, fmt.Errorf("%w: %v", errNoService, &r)
}

// serveAuth calls the Auth service method for an auth change.
func serveAuth(ctx context.Context, a pb.AuthServer, ir *pb.InternalRaftRequest) (proto.Message, error) {
	switch {
	case ir.AuthUserAdd != nil:
		return answer(a.UserAdd(ctx, ir.AuthUserAdd))
	case ir.AuthUserDelete != nil:
		return answer(a.UserDelete(ctx, ir.AuthUserDelete))
	case ir.AuthUserChangePassword != nil:
		return answer(a.UserChangePassword(ctx, ir.AuthUserChangePassword))
	case ir.AuthRoleAdd != nil:
		return answer(a.RoleAdd(ctx, ir.AuthRoleAdd))
	case ir.AuthRoleDelete != nil:
		return answer(a.RoleDelete(ctx, ir.AuthRoleDelete))
	case ir.AuthRoleGrantPermission != nil:
		return answer(a.RoleGrantPermission(ctx, ir.AuthRoleGrantPermission))
	case ir.AuthRoleRevokePermission != nil:
		return answer(a.RoleRevokePermission(ctx, ir.AuthRoleRevokePermission))
	case ir.AuthUserGrantRole != nil:
		return answer(a.UserGrantRole(ctx, ir.AuthUserGrantRole))
	case ir.AuthUserRevokeRole != nil:
		return answer(a.UserRevokeRole(ctx, ir.AuthUserRevokeRole))
	}
	return nil, fmt.Errorf("%w: %v", errNoService, ir)
}
