package core

import (
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core/auth"
	"github.com/detcd/detcd/core/lease"
)

// AuthLookup answers an AuthLookup request: what the driver needs to
// check a password off the loop (bcrypt is far too slow for it).
type AuthLookup struct {
	Enabled bool
	// Found is false for an unknown user; NoPassword is set for a user
	// added without one.
	Found      bool
	NoPassword bool
	Hash       []byte
	// Revision is the store's, for Authenticate's header: a password
	// checked at an older revision is checked again.
	Revision uint64
}

// AuthEnabled reports whether auth is on, for drivers that serve reads
// off the loop: with auth on they send them through it instead.
func (n *Node) AuthEnabled() bool { return n.st.auth.Enabled() }

// AuthRevision is the auth store's revision, for metrics.
func (n *Node) AuthRevision() uint64 { return n.st.auth.Revision() }

// AuthPerms are the permissions as of now, immutable: drivers hand them
// to handlers, which check reads with them off the loop.
func (n *Node) AuthPerms() *auth.Perms { return n.st.auth.Perms() }

// authTokenSweepTicks is how often lapsed tokens are forgotten.
const authTokenSweepTicks = 1024

func (n *Node) lookupUser(r Request) {
	a := n.st.auth
	hash, found, noPassword := a.Password(r.AuthLookup.User)
	lk := &AuthLookup{Enabled: a.Enabled(), Found: found, NoPassword: noPassword, Hash: hash, Revision: a.Revision()}
	n.out.Responses = append(n.out.Responses, Response{ID: r.ID, Lookup: lk})
}

// authorize checks a client request against the auth store as it
// arrives, and records who makes it: proposals carry the user and the
// auth revision, and apply checks them again against the store of that
// moment, as every member does alike.
func (n *Node) authorize(r *Request) error {
	a := n.st.auth
	r.authRev = a.Revision()
	if authOpen(r) {
		return nil
	}
	if !a.Enabled() || forwardedLeaseRead(r) {
		return nil
	}
	user, rev, err := n.tokenUser(r)
	if err != nil {
		return err
	}
	// A JWT's request dates from its token, as etcd stamps it: apply
	// then refuses what an auth change since made stale.
	r.user, r.authRev = user, rev
	if linearizableRead(r) {
		return nil // checked when served (servePermitted)
	}
	return n.permitted(user, rev, r)
}

// forwardedLeaseRead is a renewal or a time-to-live that another member
// forwarded to this leader: that member checked it against its own
// leases and auth store, as etcd's does before it forwards, and etcd's
// leader answers without a check of its own. Checking the leader's
// lease keys as well would refuse what etcd allows.
func forwardedLeaseRead(r *Request) bool {
	return r.ID&peerRequestBit != 0 && (r.LeaseKeepAlive != nil || r.LeaseTimeToLive != nil)
}

// rangePermitted is etcd's check of an operation on a range: refused if
// the request's credentials date from before the last auth change, else
// if user may not read (or write) it. Only these checks look at the
// revision; the administrator's check does not, as in etcd, so a stale
// JWT may still grant a lease, say.
func (n *Node) rangePermitted(user string, rev uint64, key, end []byte, write bool) error {
	return n.st.auth.Perms().CheckRange(user, rev, key, end, write)
}

// linearizableRead reports a read that waits for a read index before it
// is served: etcd checks its permissions only then, against the store as
// it is once the read index is applied, so that a permission revoked
// before the read was made refuses it even on a member that had not yet
// applied the revoke when the read arrived.
func linearizableRead(r *Request) bool {
	return r.Range != nil && !r.Range.Serializable ||
		r.Txn != nil && isTxnReadonly(r.Txn) && !isTxnSerializable(r.Txn)
}

// servePermitted serves a read whose read index is applied, once its
// user's permissions of now allow it.
func (n *Node) servePermitted(r Request) {
	if linearizableRead(&r) {
		// The user again too: auth may have been enabled meanwhile.
		r.user = ""
		if err := n.authorize(&r); err != nil {
			n.respond(r.ID, nil, err)
			return
		}
		if r.user != "" {
			if err := n.permitted(r.user, r.authRev, &r); err != nil {
				n.respond(r.ID, nil, err)
				return
			}
		}
	}
	n.serveRead(r)
}

// tokenUser is who a request comes from, and the auth revision its
// credentials date from.
func (n *Node) tokenUser(r *Request) (string, uint64, error) {
	switch {
	case r.TokenUser != "":
		return r.TokenUser, r.TokenRevision, nil
	case r.Token != "":
		// A simple token names only its user, as etcd's: the request
		// dates from now, so a change of the store since the token was
		// issued does not turn it away (apply still does if the store
		// changes before the request is applied).
		user, ok := n.tokens.Lookup(r.Token, n.ticks)
		if !ok {
			return "", 0, auth.ErrInvalidAuthToken
		}
		return user, n.st.auth.Revision(), nil
	case r.CertUser != "":
		return r.CertUser, n.st.auth.Revision(), nil
	}
	return "", 0, auth.ErrUserEmpty
}

// authOpen are the requests etcd serves without a user (Authenticate,
// AuthStatus) and what drivers ask for themselves.
func authOpen(r *Request) bool {
	return r.AuthLookup != nil || r.ReadIndex || r.HandOff ||
		r.Auth != nil && (r.Auth.Authenticate != nil || r.Auth.AuthStatus != nil)
}

// permitted checks user's permissions for what r does.
func (n *Node) permitted(user string, rev uint64, r *Request) error {
	a := n.st.auth
	switch {
	case r.Range != nil:
		return n.rangePermitted(user, rev, r.Range.Key, r.Range.RangeEnd, false)
	case r.Put != nil:
		return n.putPermitted(user, rev, r.Put)
	case r.DeleteRange != nil:
		return n.deletePermitted(user, rev, r.DeleteRange)
	case r.Txn != nil:
		return n.txnPermitted(user, rev, r.Txn)
	case r.LeaseGrant != nil, r.Status, r.MemberList != nil, r.WhoAmI:
		return nil
	case r.LeaseRevoke != nil, r.LeaseKeepAlive != nil, r.LeaseTimeToLive != nil, r.LeaseLeases:
		return n.leasePermitted(user, rev, r)
	case r.Alarm != nil && r.Alarm.Action == pb.AlarmRequest_GET:
		return nil
	case r.Auth != nil:
		return n.authOpPermitted(user, r.Auth)
	}
	// Compaction, alarm changes, defragmentation, hashes, backups,
	// membership changes and leadership moves are the administrator's.
	return a.IsAdmin(user)
}

func (n *Node) putPermitted(user string, rev uint64, p *pb.PutRequest) error {
	if err := n.rangePermitted(user, rev, p.Key, nil, true); err != nil {
		return err
	}
	// As etcd: attaching a key to a lease whose keys the user could not
	// write (so could not revoke) is refused.
	if p.Lease != 0 {
		if err := n.leaseKeysPermitted(user, rev, p.Lease, true); err != nil {
			return err
		}
	}
	if p.PrevKv && !n.bug(BugAuthPrevKVUnchecked) { // planted: prev_kv needs no read permission
		return n.rangePermitted(user, rev, p.Key, nil, false)
	}
	return nil
}

func (n *Node) deletePermitted(user string, rev uint64, d *pb.DeleteRangeRequest) error {
	if err := n.rangePermitted(user, rev, d.Key, d.RangeEnd, true); err != nil {
		return err
	}
	if d.PrevKv {
		return n.rangePermitted(user, rev, d.Key, d.RangeEnd, false)
	}
	return nil
}

func (n *Node) txnPermitted(user string, rev uint64, t *pb.TxnRequest) error {
	for _, c := range t.Compare {
		if err := n.rangePermitted(user, rev, c.Key, c.RangeEnd, false); err != nil {
			return err
		}
	}
	for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			var err error
			switch {
			case op.GetRequestRange() != nil:
				rr := op.GetRequestRange()
				err = n.rangePermitted(user, rev, rr.Key, rr.RangeEnd, false)
			case op.GetRequestPut() != nil:
				err = n.putPermitted(user, rev, op.GetRequestPut())
			case op.GetRequestDeleteRange() != nil:
				err = n.deletePermitted(user, rev, op.GetRequestDeleteRange())
			case op.GetRequestTxn() != nil && !n.bug(BugAuthTxnNestedUnchecked): // planted: nested transactions unchecked
				err = n.txnPermitted(user, rev, op.GetRequestTxn())
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// leasePermitted checks a lease request as etcd does: granting one, or
// asking a lease's time to live without its keys, needs only a user.
// Revoking a lease deletes its keys, and renewing it keeps them, so both
// need write permission on each; asking for its keys shows them, and
// listing the leases shows what every lease holds, so they need read
// permission on each. Renewals are checked where they arrive, on this
// member's leases, as etcd checks them before forwarding to the leader.
func (n *Node) leasePermitted(user string, rev uint64, r *Request) error {
	switch {
	case r.LeaseRevoke != nil && !n.bug(BugAuthLeaseRevokeUnchecked): // planted: a revoke needs only a user
		return n.leaseKeysPermitted(user, rev, r.LeaseRevoke.ID, true)
	case r.LeaseKeepAlive != nil:
		return n.leaseKeysPermitted(user, rev, r.LeaseKeepAlive.ID, true)
	case r.LeaseTimeToLive != nil && r.LeaseTimeToLive.Keys:
		return n.leaseKeysPermitted(user, rev, r.LeaseTimeToLive.ID, false)
	case r.LeaseLeases:
		if n.st.auth.IsAdmin(user) == nil {
			return nil
		}
		for _, l := range n.lessor.Leases() {
			if err := n.keysPermitted(user, rev, l, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// leaseKeysPermitted checks user's permission on the keys of lease id;
// an unknown lease has none.
func (n *Node) leaseKeysPermitted(user string, rev uint64, id int64, write bool) error {
	l := n.lessor.Lookup(lease.ID(id))
	if l == nil || n.st.auth.IsAdmin(user) == nil {
		return nil
	}
	return n.keysPermitted(user, rev, l, write)
}

func (n *Node) keysPermitted(user string, rev uint64, l *lease.Lease, write bool) error {
	for _, k := range l.Keys() {
		if err := n.rangePermitted(user, rev, []byte(k), nil, write); err != nil {
			return err
		}
	}
	return nil
}

// authOpPermitted: auth management is the administrator's, but a user
// may look at itself and at the roles it has.
func (n *Node) authOpPermitted(user string, ir *pb.InternalRaftRequest) error {
	a := n.st.auth
	switch {
	case ir.AuthUserGet != nil && ir.AuthUserGet.Name == user:
		return nil
	case ir.AuthRoleGet != nil && a.HasRole(user, ir.AuthRoleGet.Role):
		return nil
	}
	return a.IsAdmin(user)
}

// applyAuthCheck checks a client's proposal at apply against the
// user's permissions of now: an operation on keys made before the last
// auth change is refused (the client authenticates again and retries, as
// clientv3 does). Internal proposals carry revision 0 and act as root.
func (n *Node) applyAuthCheck(ir *pb.InternalRaftRequest) error {
	a := n.st.auth
	h := ir.GetHeader()
	if !a.Enabled() || h.GetAuthRevision() == 0 || ir.Authenticate != nil || ir.AuthStatus != nil {
		return nil
	}
	if h.GetUsername() == "" {
		return auth.ErrUserEmpty // made while auth was off
	}
	r := Request{Put: ir.Put, DeleteRange: ir.DeleteRange, Txn: ir.Txn, Compaction: ir.Compaction,
		Alarm: ir.Alarm, LeaseGrant: ir.LeaseGrant, LeaseRevoke: ir.LeaseRevoke}
	if isAuthOp(ir) {
		r.Auth = ir
	}
	return n.permitted(h.GetUsername(), h.GetAuthRevision(), &r)
}

func isAuthOp(ir *pb.InternalRaftRequest) bool {
	return ir.AuthEnable != nil || ir.AuthDisable != nil || ir.AuthStatus != nil || ir.Authenticate != nil ||
		ir.AuthUserAdd != nil || ir.AuthUserDelete != nil || ir.AuthUserGet != nil ||
		ir.AuthUserChangePassword != nil || ir.AuthUserGrantRole != nil || ir.AuthUserRevokeRole != nil ||
		ir.AuthUserList != nil || ir.AuthRoleList != nil || ir.AuthRoleAdd != nil || ir.AuthRoleDelete != nil ||
		ir.AuthRoleGet != nil || ir.AuthRoleGrantPermission != nil || ir.AuthRoleRevokePermission != nil
}

// proposeAuth sends an auth request through raft, as etcd does with all
// of them (reads included, so they are linearizable).
func (n *Node) proposeAuth(r Request) {
	if !isAuthOp(r.Auth) {
		n.respond(r.ID, nil, ErrUnknownRequest)
		return
	}
	ir := proto.Clone(r.Auth).(*pb.InternalRaftRequest)
	if n.bug(BugAuthReadLocal) && (ir.AuthUserGet != nil || ir.AuthUserList != nil || ir.AuthRoleGet != nil || ir.AuthRoleList != nil || ir.AuthStatus != nil) {
		// planted: a read of the auth store answered from this member's
		// own store, without raft: a member behind answers stale.
		resp, err := n.applyAuth(ir, 0)
		n.respond(r.ID, resp, err)
		return
	}
	rev := r.authRev
	if ir.Authenticate != nil {
		rev = ir.GetHeader().GetAuthRevision() // the one the password was checked at
	}
	ir.Header = &pb.RequestHeader{Username: r.user, AuthRevision: rev}
	n.proposeRequest(r.ID, ir, nil)
}

// applyAuth applies an auth request.
func (n *Node) applyAuth(ir *pb.InternalRaftRequest, index uint64) (proto.Message, error) {
	a := n.st.auth
	hdr := func() *pb.ResponseHeader { return n.header(0) }
	switch {
	case ir.AuthEnable != nil:
		if err := a.Enable(); err != nil {
			return nil, err
		}
		return &pb.AuthEnableResponse{Header: hdr()}, nil
	case ir.AuthDisable != nil:
		a.Disable()
		n.tokens.Reset()
		return &pb.AuthDisableResponse{Header: hdr()}, nil
	case ir.AuthStatus != nil:
		return &pb.AuthStatusResponse{Header: hdr(), Enabled: a.Enabled(), AuthRevision: a.Revision()}, nil
	case ir.Authenticate != nil:
		return n.applyAuthenticate(ir, index)
	}
	return n.applyAuthUserRole(ir)
}

func (n *Node) applyAuthenticate(ir *pb.InternalRaftRequest, index uint64) (proto.Message, error) {
	a := n.st.auth
	req := ir.Authenticate
	if !a.Enabled() {
		return nil, auth.ErrAuthNotEnabled
	}
	if _, found, noPassword := a.Password(req.Name); !found || noPassword {
		return nil, auth.ErrAuthFailed
	}
	if ir.GetHeader().GetAuthRevision() != a.Revision() {
		return nil, auth.ErrAuthOldRevision // the password may have changed since it was checked
	}
	if n.cfg.AuthTokensExternal {
		return &pb.AuthenticateResponse{Header: n.header(0)}, nil // the driver signs one
	}
	token := fmt.Sprintf("%s.%d", req.SimpleToken, index)
	n.tokens.Assign(token, req.Name, n.ticks)
	return &pb.AuthenticateResponse{Header: n.header(0), Token: token}, nil
}

func (n *Node) applyAuthUserRole(ir *pb.InternalRaftRequest) (proto.Message, error) {
	a := n.st.auth
	hdr := n.header(0)
	var err error
	var resp proto.Message
	switch {
	case ir.AuthUserAdd != nil:
		r := ir.AuthUserAdd
		err = a.UserAdd(r.Name, []byte(r.HashedPassword), r.GetOptions().GetNoPassword())
		resp = &pb.AuthUserAddResponse{Header: hdr}
	case ir.AuthUserDelete != nil:
		err = a.UserDelete(ir.AuthUserDelete.Name)
		n.tokens.InvalidateUser(ir.AuthUserDelete.Name)
		resp = &pb.AuthUserDeleteResponse{Header: hdr}
	case ir.AuthUserChangePassword != nil:
		r := ir.AuthUserChangePassword
		err = a.UserChangePassword(r.Name, []byte(r.HashedPassword))
		n.tokens.InvalidateUser(r.Name)
		resp = &pb.AuthUserChangePasswordResponse{Header: hdr}
	case ir.AuthUserGrantRole != nil:
		err = a.UserGrantRole(ir.AuthUserGrantRole.User, ir.AuthUserGrantRole.Role)
		resp = &pb.AuthUserGrantRoleResponse{Header: hdr}
	case ir.AuthUserRevokeRole != nil:
		err = a.UserRevokeRole(ir.AuthUserRevokeRole.Name, ir.AuthUserRevokeRole.Role)
		resp = &pb.AuthUserRevokeRoleResponse{Header: hdr}
	case ir.AuthUserGet != nil:
		var roles []string
		roles, err = a.UserGet(ir.AuthUserGet.Name)
		resp = &pb.AuthUserGetResponse{Header: hdr, Roles: roles}
	case ir.AuthUserList != nil:
		resp = &pb.AuthUserListResponse{Header: hdr, Users: a.UserList()}
	case ir.AuthRoleAdd != nil:
		err = a.RoleAdd(ir.AuthRoleAdd.Name)
		resp = &pb.AuthRoleAddResponse{Header: hdr}
	case ir.AuthRoleDelete != nil:
		err = a.RoleDelete(ir.AuthRoleDelete.Role)
		resp = &pb.AuthRoleDeleteResponse{Header: hdr}
	case ir.AuthRoleGet != nil:
		r := &pb.AuthRoleGetResponse{Header: hdr}
		r.Perm, err = a.RoleGet(ir.AuthRoleGet.Role)
		resp = r
	case ir.AuthRoleList != nil:
		resp = &pb.AuthRoleListResponse{Header: hdr, Roles: a.RoleList()}
	case ir.AuthRoleGrantPermission != nil:
		err = a.RoleGrantPermission(ir.AuthRoleGrantPermission.Name, ir.AuthRoleGrantPermission.Perm)
		resp = &pb.AuthRoleGrantPermissionResponse{Header: hdr}
	case ir.AuthRoleRevokePermission != nil:
		r := ir.AuthRoleRevokePermission
		err = a.RoleRevokePermission(r.Role, r.Key, r.RangeEnd)
		resp = &pb.AuthRoleRevokePermissionResponse{Header: hdr}
	default:
		return nil, errors.New("core: unknown auth request")
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}
