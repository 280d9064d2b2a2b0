package core_test

import (
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/auth"
	"github.com/detcd/detcd/core/wal/memfs"
)

// authMember starts a member with auth on: root has the root role, alice
// the role rw (READWRITE on [/a, /b)), bob no role at all. It returns
// their simple tokens.
func authMember(t *testing.T) (*member, map[string]string) {
	t.Helper()
	m := startMember(t, memfs.New(), testConfig())
	for _, ir := range []*pb.InternalRaftRequest{
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", HashedPassword: "h"}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "root"}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice", HashedPassword: "h"}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "rw"}},
		{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "rw",
			Perm: &authpb.Permission{PermType: authpb.READWRITE, Key: []byte("/a"), RangeEnd: []byte("/b")}}},
		{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "rw"}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "bob", HashedPassword: "h"}},
		{AuthEnable: &pb.AuthEnableRequest{}},
	} {
		if r := m.do(core.Request{Auth: ir}); r.Err != nil {
			t.Fatalf("%v: %v", ir, r.Err)
		}
	}
	tokens := map[string]string{}
	for _, user := range []string{"root", "alice", "bob"} {
		tokens[user] = login(m, user)
	}
	return m, tokens
}

// login authenticates user as the driver does: it looks the user up (the
// password check is the driver's), then proposes the token at the auth
// revision it looked at.
func login(m *member, user string) string {
	m.t.Helper()
	lk := m.do(core.Request{AuthLookup: &core.AuthLookupRequest{User: user}}).Lookup
	r := m.do(core.Request{Auth: &pb.InternalRaftRequest{
		Header:       &pb.RequestHeader{AuthRevision: lk.Revision},
		Authenticate: &pb.InternalAuthenticateRequest{Name: user, SimpleToken: "tok-" + user},
	}})
	if r.Err != nil {
		m.t.Fatalf("authenticate %s: %v", user, r.Err)
	}
	return r.Msg.(*pb.AuthenticateResponse).Token
}

// asUser is r made with user's token.
func asUser(tokens map[string]string, user string, r core.Request) core.Request {
	r.Token = tokens[user]
	return r
}

// TestAuthLeaseRules: what etcd lets a user do with a lease depends on
// the keys attached to it: renewing or revoking it needs write
// permission on each, asking for its keys or listing leases read
// permission on each key of the leases; granting one, or asking a
// lease's time to live without its keys, needs only a user.
func TestAuthLeaseRules(t *testing.T) {
	m, tokens := authMember(t)
	const other, empty, alices, unknown = 1, 2, 3, 99
	for _, r := range []core.Request{
		asUser(tokens, "root", core.Request{LeaseGrant: &pb.LeaseGrantRequest{ID: other, TTL: 60}}),
		asUser(tokens, "root", core.Request{Put: &pb.PutRequest{Key: []byte("/other"), Lease: other}}),
		asUser(tokens, "bob", core.Request{LeaseGrant: &pb.LeaseGrantRequest{ID: empty, TTL: 60}}),
		asUser(tokens, "alice", core.Request{LeaseGrant: &pb.LeaseGrantRequest{ID: alices, TTL: 60}}),
		asUser(tokens, "alice", core.Request{Put: &pb.PutRequest{Key: []byte("/a/1"), Lease: alices}}),
	} {
		if resp := m.do(r); resp.Err != nil {
			t.Fatalf("setting up: %v: %v", r, resp.Err)
		}
	}
	keepAlive := func(id int64) core.Request {
		return core.Request{LeaseKeepAlive: &pb.LeaseKeepAliveRequest{ID: id}}
	}
	timeToLive := func(id int64, keys bool) core.Request {
		return core.Request{LeaseTimeToLive: &pb.LeaseTimeToLiveRequest{ID: id, Keys: keys}}
	}
	denied := auth.ErrPermissionDenied
	for _, tt := range []struct {
		name, user string
		r          core.Request
		want       error
	}{
		{"keep-alive of a lease holding a key the user cannot write", "bob", keepAlive(other), denied},
		{"keep-alive of a lease holding a key of another's", "alice", keepAlive(other), denied},
		{"root's keep-alive", "root", keepAlive(other), nil},
		{"keep-alive of a lease without keys", "bob", keepAlive(empty), nil},
		{"keep-alive of an unknown lease", "bob", keepAlive(unknown), nil},
		{"keep-alive of a lease holding the user's keys", "alice", keepAlive(alices), nil},
		{"keep-alive of a lease holding alice's keys", "bob", keepAlive(alices), denied},
		{"keep-alive without a user", "", keepAlive(empty), auth.ErrUserEmpty},
		{"time to live without keys", "bob", timeToLive(other, false), nil},
		{"time to live with keys the user cannot read", "bob", timeToLive(other, true), denied},
		{"time to live with the user's keys", "alice", timeToLive(alices, true), nil},
		{"time to live with keys, of a lease without any", "bob", timeToLive(empty, true), nil},
		{"leases, one holding a key the user cannot read", "alice", core.Request{LeaseLeases: true}, denied},
		{"leases, as root", "root", core.Request{LeaseLeases: true}, nil},
		{"revoke of a lease holding a key the user cannot write", "bob", core.Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: other}}, denied},
		{"grant by a user without roles", "bob", core.Request{LeaseGrant: &pb.LeaseGrantRequest{ID: 4, TTL: 60}}, nil},
	} {
		if got := m.do(asUser(tokens, tt.user, tt.r)).Err; !errors.Is(got, tt.want) {
			t.Errorf("%s (%s): %v, want %v", tt.name, tt.user, got, tt.want)
		}
	}
	if r := m.do(asUser(tokens, "root", core.Request{LeaseRevoke: &pb.LeaseRevokeRequest{ID: other}})); r.Err != nil {
		t.Fatalf("root's revoke: %v", r.Err)
	}
	for user, want := range map[string]error{"alice": nil, "bob": denied} {
		if got := m.do(asUser(tokens, user, core.Request{LeaseLeases: true})).Err; !errors.Is(got, want) {
			t.Errorf("leases of which only alice's holds a key, for %s: %v, want %v", user, got, want)
		}
	}
}

// TestAuthRangeEndBeforeKey: a range whose end sorts at or before its key
// holds nothing, but the user must still be permitted its key.
func TestAuthRangeEndBeforeKey(t *testing.T) {
	m, tokens := authMember(t)
	inverted := func(key, end string) *pb.RangeRequest {
		return &pb.RangeRequest{Key: []byte(key), RangeEnd: []byte(end)}
	}
	for _, tt := range []struct {
		name string
		r    core.Request
		want error
	}{
		{"range outside", core.Request{Range: inverted("/z", "/a")}, auth.ErrPermissionDenied},
		{"range ending at its key", core.Request{Range: inverted("/z", "/z")}, auth.ErrPermissionDenied},
		{"range at a permitted key", core.Request{Range: inverted("/a/1", "/a")}, nil},
		{"delete outside", core.Request{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("/z"), RangeEnd: []byte("/a/1")}}, auth.ErrPermissionDenied},
		{"txn comparing outside", core.Request{Txn: &pb.TxnRequest{Compare: []*pb.Compare{{
			Key: []byte("/z"), RangeEnd: []byte("/a"), Target: pb.Compare_VERSION}}}}, auth.ErrPermissionDenied},
		{"txn reading outside", core.Request{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{
			Request: &pb.RequestOp_RequestRange{RequestRange: inverted("/z", "/a")}}}}}, auth.ErrPermissionDenied},
	} {
		if got := m.do(asUser(tokens, "alice", tt.r)).Err; !errors.Is(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestAuthSimpleTokenAcrossStoreChange: a simple token stays good when
// the auth store changes, as etcd's do; a request checked before a change
// that is applied after it is still refused, and a JWT's user is still
// bound to the revision it was issued at.
func TestAuthSimpleTokenAcrossStoreChange(t *testing.T) {
	m, tokens := authMember(t)
	addRole := func(name string) core.Request {
		return asUser(tokens, "root", core.Request{Auth: &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: name}}})
	}
	if r := m.do(addRole("unrelated")); r.Err != nil {
		t.Fatalf("role add: %v", r.Err)
	}
	for name, r := range map[string]core.Request{
		"range":      {Range: &pb.RangeRequest{Key: []byte("/a/1")}},
		"put":        {Put: &pb.PutRequest{Key: []byte("/a/1"), Value: []byte("v")}},
		"lease":      {LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 60}},
		"keep-alive": {LeaseKeepAlive: &pb.LeaseKeepAliveRequest{ID: 7}},
	} {
		if got := m.do(asUser(tokens, "alice", r)).Err; got != nil {
			t.Errorf("%s after an unrelated auth change: %v", name, got)
		}
	}

	// Both are checked before either is applied: the put, stamped with
	// the revision before the role, is refused at apply.
	put := asUser(tokens, "alice", core.Request{Put: &pb.PutRequest{Key: []byte("/a/2"), Value: []byte("v")}})
	resps := m.doTogether(addRole("another"), put)
	if resps[0].Err != nil || !errors.Is(resps[1].Err, auth.ErrAuthOldRevision) {
		t.Errorf("a put checked before an auth change applied first: role add %v, put %v; want the put refused", resps[0].Err, resps[1].Err)
	}

	lk := m.do(core.Request{AuthLookup: &core.AuthLookupRequest{User: "alice"}}).Lookup
	jwt := core.Request{TokenUser: "alice", TokenRevision: lk.Revision - 1, Range: &pb.RangeRequest{Key: []byte("/a/1")}}
	if got := m.do(jwt).Err; !errors.Is(got, auth.ErrAuthOldRevision) {
		t.Errorf("a JWT issued before an auth change: %v, want %v", got, auth.ErrAuthOldRevision)
	}
}

// doTogether hands the member all of rs before driving it, then returns
// their responses in order.
func (m *member) doTogether(rs ...core.Request) []core.Response {
	m.t.Helper()
	ids := make([]core.RequestID, len(rs))
	for i, r := range rs {
		ids[i] = m.request(r)
	}
	out := make([]core.Response, len(rs))
	for i, id := range ids {
		for j := 0; ; j++ {
			if resp, ok := m.got[id]; ok {
				delete(m.got, id)
				out[i] = resp
				break
			}
			if j == 200 {
				m.t.Fatalf("no response to %+v", rs[i])
			}
			m.settle()
			m.n.Tick()
		}
	}
	return out
}
