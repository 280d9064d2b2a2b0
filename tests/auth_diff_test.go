package tests

// TestAuthDiff runs one fixed, scripted scenario of auth operations
// (users, roles, permissions, AuthEnable/Disable, permission checks on KV,
// Watch, Lease and maintenance requests) through clientv3 against an
// embedded real etcd 3.7.3 and against an in-process detcd, and requires
// the two transcripts to agree step by step.
//
// Each step's result is a normalized string: an error's gRPC code and
// message, or the answer's relevant fields. Cluster and member ids, raft
// terms, lease ids and tokens are left out (they legitimately differ);
// header revisions are kept, since etcd puts its KV revision in the
// header of auth answers too, and that must agree.
//
// clientv3 is used on purpose here, unlike in TestDiff: how the client
// gets and refreshes its token is part of what must work.
//
// -authdiff.etcd-only runs only the etcd side and logs its transcript, to
// check the scenario itself.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/detcd/detcd/server"
)

var authDiffEtcdOnly = flag.Bool("authdiff.etcd-only", false, "TestAuthDiff: run the scenario against etcd only and log its transcript")

// authStepTimeout bounds every call and every client's dial, so that a
// server that does not answer fails the step instead of hanging the test.
const authStepTimeout = 5 * time.Second

// clientv3's PermRead and PermReadWrite are authpb values; its
// RoleGrantPermission wants its own type.
var (
	permRead      = clientv3.PermissionType(clientv3.PermRead)
	permReadWrite = clientv3.PermissionType(clientv3.PermReadWrite)
)

func TestAuthDiff(t *testing.T) {
	etcdAddr, _ := startEmbeddedEtcd(t, true)
	want := runAuthScenario(t, "etcd", etcdAddr)
	if *authDiffEtcdOnly {
		t.Logf("etcd transcript:\n%s", strings.Join(want, "\n"))
		return
	}
	detcdAddr, _ := startInProcDetcd(t, true)
	got := runAuthScenario(t, "detcd", detcdAddr)
	compareAuthTranscripts(t, want, got)
}

// TestAuthDiffJWT runs the scenario with JWT tokens on both servers:
// detcd then checks reads off its loop, with the permissions it
// publishes, and must still agree with etcd at every step.
func TestAuthDiffJWT(t *testing.T) {
	if *authDiffEtcdOnly {
		t.Skip("-authdiff.etcd-only")
	}
	priv, pub := writeJWTKeys(t)
	tok := "jwt,pub-key=" + pub + ",priv-key=" + priv + ",sign-method=ES256,ttl=5m"
	etcdAddr, _ := startEmbeddedEtcd(t, true, func(c *embed.Config) { c.AuthToken = tok })
	want := runAuthScenario(t, "etcd", etcdAddr)
	detcdAddr, _ := startInProcDetcd(t, true, func(c *server.Config) { c.AuthToken = tok })
	got := runAuthScenario(t, "detcd", detcdAddr)
	compareAuthTranscripts(t, want, got)
}

// writeJWTKeys writes a fresh P-256 key pair as PEM files, for ES256.
func writeJWTKeys(t *testing.T) (priv, pub string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	priv, pub = filepath.Join(dir, "jwt.key"), filepath.Join(dir, "jwt.pub")
	for name, b := range map[string]*pem.Block{priv: {Type: "EC PRIVATE KEY", Bytes: privDER}, pub: {Type: "PUBLIC KEY", Bytes: pubDER}} {
		if err := os.WriteFile(name, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return priv, pub
}

// compareAuthTranscripts reports the first step where detcd's result
// differs from etcd's, and lists the later differing steps, which are
// often consequences of the first.
func compareAuthTranscripts(t *testing.T, want, got []string) {
	t.Helper()
	var diffs []string
	for i := range max(len(want), len(got)) {
		w, g := at(want, i), at(got, i)
		if w != g {
			diffs = append(diffs, fmt.Sprintf("step %d:\n  etcd:  %s\n  detcd: %s", i+1, w, g))
		}
	}
	if len(diffs) == 0 {
		return
	}
	t.Errorf("first difference of %d, at %s", len(diffs), diffs[0])
	t.Logf("all differences:\n%s", strings.Join(diffs, "\n"))
	t.Logf("etcd transcript:\n%s", strings.Join(want, "\n"))
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(missing)"
}

// authSession is one server and the clients the scenario opened on it,
// by name.
type authSession struct {
	t       *testing.T
	addr    string
	clients map[string]*clientv3.Client
	// leases are the leases steps granted, by the name the script gives
	// them: their ids differ between the servers.
	leases map[string]clientv3.LeaseID
}

// authStep is one step of the scenario; name says who does what.
type authStep struct {
	name string
	do   func(s *authSession) string
}

// runAuthScenario runs the scenario against the server at addr and
// returns its transcript, one "name -> result" line per step.
func runAuthScenario(t *testing.T, side, addr string) []string {
	s := &authSession{t: t, addr: addr, clients: map[string]*clientv3.Client{}, leases: map[string]clientv3.LeaseID{}}
	var out []string
	for i, st := range authScenario() {
		out = append(out, fmt.Sprintf("%02d %s -> %s", i+1, st.name, st.do(s)))
	}
	t.Logf("%s: %d steps run", side, len(out))
	return out
}

// open connects a client named name as user:pass (no credentials when
// user is empty). clientv3.New authenticates at once, so a wrong password
// shows here.
func (s *authSession) open(name, user, pass string) string {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{s.addr},
		DialTimeout: authStepTimeout,
		Username:    user,
		Password:    pass,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		delete(s.clients, name)
		return "new: " + errStr(err)
	}
	s.t.Cleanup(func() { cli.Close() })
	s.clients[name] = cli
	return "ok"
}

// as wraps a step done by client name with a fresh timeout context.
func as(name string, f func(ctx context.Context, c *clientv3.Client) string) func(*authSession) string {
	return func(s *authSession) string {
		c := s.clients[name]
		if c == nil {
			return "no client " + name
		}
		ctx, cancel := context.WithTimeout(context.Background(), authStepTimeout)
		defer cancel()
		return f(ctx, c)
	}
}

func open(name, user, pass string) func(*authSession) string {
	return func(s *authSession) string { return s.open(name, user, pass) }
}

// authScenario is the script. Clients: "anon" has no credentials, "root"
// and "alice" log in; the store starts empty.
func authScenario() []authStep {
	var steps []authStep
	for _, part := range [][]authStep{
		authSetupSteps(), authAliceSteps(), authLockSteps(), authMaintenanceSteps(), authLeaseRuleSteps(), authRangeEndSteps(),
		authTokenRevisionSteps(), authRevokeSteps(), authTeardownSteps(),
	} {
		steps = append(steps, part...)
	}
	return steps
}

// authSetupSteps build users, roles and permissions while auth is
// disabled, with the errors of each operation on the way, then enable it.
func authSetupSteps() []authStep {
	return []authStep{
		{"anon: open", open("anon", "", "")},
		{"anon: AuthStatus", as("anon", authStatus)},
		{"anon: AuthEnable without a root user", as("anon", authEnable)},
		{"anon: UserAdd root", as("anon", userAdd("root", "rootpw"))},
		{"anon: Authenticate root while disabled", as("anon", authenticate("root", "rootpw"))},
		{"anon: AuthEnable without the root role", as("anon", authEnable)},
		{"anon: RoleAdd root", as("anon", roleAdd("root"))},
		{"anon: UserGrantRole root root", as("anon", userGrantRole("root", "root"))},
		{"anon: AuthStatus", as("anon", authStatus)},
		{"anon: UserAdd root again", as("anon", userAdd("root", "x"))},
		{"anon: UserAdd empty name", as("anon", userAdd("", "x"))},
		{"anon: RoleAdd root again", as("anon", roleAdd("root"))},
		{"anon: RoleAdd empty name", as("anon", roleAdd(""))},
		{"anon: UserAdd alice", as("anon", userAdd("alice", "alicepw"))},
		{"anon: RoleAdd reader", as("anon", roleAdd("reader"))},
		{"anon: RoleGrantPermission reader READ [/pub/, /pub0)", as("anon", grantPerm("reader", "/pub/", "/pub0", permRead))},
		// A second permission, before the first in key order, then the
		// first again, which replaces it: RoleGet shows both, sorted.
		{"anon: RoleGrantPermission reader READ /aaa", as("anon", grantPerm("reader", "/aaa", "", permRead))},
		{"anon: RoleGrantPermission reader READ [/pub/, /pub0) again", as("anon", grantPerm("reader", "/pub/", "/pub0", permRead))},
		{"anon: RoleAdd writer", as("anon", roleAdd("writer"))},
		{"anon: RoleGrantPermission writer READWRITE /rw", as("anon", grantPerm("writer", "/rw", "", permReadWrite))},
		{"anon: RoleGrantPermission nosuch READ /x", as("anon", grantPerm("nosuch", "/x", "", permRead))},
		// Out of order, to see the roles sorted.
		{"anon: UserGrantRole alice writer", as("anon", userGrantRole("alice", "writer"))},
		{"anon: UserGrantRole alice reader", as("anon", userGrantRole("alice", "reader"))},
		{"anon: UserGrantRole alice reader again", as("anon", userGrantRole("alice", "reader"))},
		{"anon: UserGrantRole bob reader (no such user)", as("anon", userGrantRole("bob", "reader"))},
		{"anon: UserGrantRole alice nosuch (no such role)", as("anon", userGrantRole("alice", "nosuch"))},
		{"anon: RoleGet reader", as("anon", roleGet("reader"))},
		{"anon: RoleGet writer", as("anon", roleGet("writer"))},
		{"anon: RoleGet nosuch", as("anon", roleGet("nosuch"))},
		// etcd answers for root with the permission the role implies,
		// whatever was granted to it.
		{"anon: RoleGet root", as("anon", roleGet("root"))},
		{"anon: RoleGrantPermission root READ /x", as("anon", grantPerm("root", "/x", "", permRead))},
		{"anon: RoleGet root after a grant", as("anon", roleGet("root"))},
		{"anon: UserGet alice", as("anon", userGet("alice"))},
		{"anon: UserGet nosuch", as("anon", userGet("nosuch"))},
		{"anon: UserAdd nopw (no password)", as("anon", userAddNoPassword("nopw"))},
		{"anon: UserAdd emptypw (empty password)", as("anon", userAdd("emptypw", ""))},
		{"anon: UserList", as("anon", userList)},
		{"anon: RoleList", as("anon", roleList)},
		{"anon: Put /pub/a v1", as("anon", put("/pub/a", "v1"))},
		{"anon: Put /other o1", as("anon", put("/other", "o1"))},
		{"anon: AuthEnable", as("anon", authEnable)},
		{"anon: AuthStatus", as("anon", authStatus)},
		{"anon: Put /pub/a", as("anon", put("/pub/a", "v2"))},
		{"anon: Get /pub/a", as("anon", get("/pub/a"))},
		{"anon: UserList", as("anon", userList)},
		{"anon: Authenticate alice wrong password", as("anon", authenticate("alice", "wrong"))},
		{"anon: Authenticate nosuch", as("anon", authenticate("nosuch", "x"))},
		{"anon: Authenticate alice", as("anon", authenticate("alice", "alicepw"))},
		{"anon: Authenticate nopw", as("anon", authenticate("nopw", "x"))},
		{"anon: Authenticate emptypw", as("anon", authenticate("emptypw", ""))},
		{"open alice:wrong", open("alice-wrong", "alice", "wrong")},
		{"open nosuch:x", open("nosuch", "nosuch", "x")},
		{"open root", open("root", "root", "rootpw")},
		{"open alice", open("alice", "alice", "alicepw")},
	}
}

// authAliceSteps check alice's permissions: READ on [/pub/, /pub0),
// READWRITE on the single key /rw, nothing else.
func authAliceSteps() []authStep {
	return []authStep{
		{"alice: Get /pub/a", as("alice", get("/pub/a"))},
		{"alice: Get prefix /pub/", as("alice", get("/pub/", clientv3.WithPrefix()))},
		{"alice: Get [/pub/a, /pub/z)", as("alice", get("/pub/a", clientv3.WithRange("/pub/z")))},
		{"alice: Get prefix / (wider than granted)", as("alice", get("/", clientv3.WithPrefix()))},
		{"alice: Put /pub/a", as("alice", put("/pub/a", "v2"))},
		{"alice: Put /rw r1", as("alice", put("/rw", "r1"))},
		{"alice: Get /rw", as("alice", get("/rw"))},
		{"alice: Get prefix /rw (wider than granted)", as("alice", get("/rw", clientv3.WithPrefix()))},
		{"alice: Get /other", as("alice", get("/other"))},
		{"alice: Delete /rw", as("alice", del("/rw"))},
		{"alice: Delete /pub/a", as("alice", del("/pub/a"))},
		{"alice: Txn if /pub/a=v1 then Put /rw else Get /pub/a", as("alice", txnPubRW)},
		{"alice: Txn then Put /pub/x", as("alice", txnThen(clientv3.OpPut("/pub/x", "x")))},
		{"alice: Txn then Get /other", as("alice", txnThen(clientv3.OpGet("/other")))},
		{"alice: Txn if /other exists", as("alice", txnIfOther)},
		{"alice: Put /rw with prev_kv", as("alice", put("/rw", "r2", clientv3.WithPrevKV()))},
		{"alice: Watch prefix /pub/, root puts /pub/b", watchPubPrefix},
		{"alice: Watch /other", as("alice", watchDenied("/other"))},
		{"alice: Watch prefix / (wider than granted)", as("alice", watchDenied("/", clientv3.WithPrefix()))},
		{"anon: Watch /pub/a", as("anon", watchDenied("/pub/a"))},
		{"alice (raw gRPC): Watch /other, prefix /pub/, all keys, /other from revision -1", rawWatch("alice", "alicepw", watchesOtherPubAll...)},
		{"anon (raw gRPC): Watch /other, prefix /pub/, all keys, /other from revision -1", rawWatch("", "", watchesOtherPubAll...)},
		{"root (raw gRPC): Watch all keys", rawWatch("root", "rootpw", &pb.WatchCreateRequest{RangeEnd: []byte{0}})},
		{"empty token (raw gRPC): Get /pub/a, Watch /pub/a", rawEmptyToken},
		{"alice: LeaseGrant 60 + Put /rw with it + TimeToLive + Revoke", leaseSteps},
		{"root: lease holding /other; alice attaches /rw to it, revokes it", leaseOfOthers},
		{"alice: Get /rw after the lease's revocation", as("alice", get("/rw"))},
	}
}

// authMaintenanceSteps are what a user without the root role may do
// besides keys: admin-only requests, its own user and roles, status.
func authMaintenanceSteps() []authStep {
	return []authStep{
		{"alice: Compact", as("alice", compact)},
		{"alice: UserList", as("alice", userList)},
		{"alice: RoleList", as("alice", roleList)},
		{"alice: UserGet alice (itself)", as("alice", userGet("alice"))},
		{"alice: UserGet root", as("alice", userGet("root"))},
		{"alice: RoleGet reader (its own)", as("alice", roleGet("reader"))},
		{"alice: RoleGet root", as("alice", roleGet("root"))},
		{"alice: UserAdd eve", as("alice", userAdd("eve", "evepw"))},
		{"alice: RoleGrantPermission reader READ /other", as("alice", grantPerm("reader", "/other", "", permRead))},
		{"alice: AuthDisable", as("alice", authDisable)},
		{"alice: AuthStatus", as("alice", authStatus)},
		{"alice: MemberList", as("alice", memberList)},
		{"alice: Status", statusOf("alice")},
		{"alice: HashKV", hashKVOf("alice")},
		{"alice: AlarmList", as("alice", alarmList)},
		{"alice: MemberAddAsLearner", as("alice", addLearner)},
		{"anon: MemberList", as("anon", memberList)},
		{"anon: Status", statusOf("anon")},
		{"anon: AlarmList", as("anon", alarmList)},
		{"anon: AuthStatus", as("anon", authStatus)},
		{"root: Compact", as("root", compact)},
		{"root: Status", statusOf("root")},
		{"root: UserList", as("root", userList)},
	}
}

// authRevokeSteps take alice's permissions and roles away and change
// her password, checking that her existing client sees each change.
func authRevokeSteps() []authStep {
	return []authStep{
		{"root: RoleRevokePermission writer /rw", as("root", revokePerm("writer", "/rw", ""))},
		{"root: RoleGet writer", as("root", roleGet("writer"))},
		{"alice: Put /rw", as("alice", put("/rw", "r3"))},
		{"alice: Get /rw", as("alice", get("/rw"))},
		{"root: RoleRevokePermission writer /rw again", as("root", revokePerm("writer", "/rw", ""))},
		{"root: RoleRevokePermission reader [/pub/, /pub1) (other range_end)", as("root", revokePerm("reader", "/pub/", "/pub1"))},
		{"root: RoleRevokePermission nosuch /x", as("root", revokePerm("nosuch", "/x", ""))},
		{"root: UserRevokeRole alice writer", as("root", userRevokeRole("alice", "writer"))},
		{"root: UserRevokeRole alice writer again", as("root", userRevokeRole("alice", "writer"))},
		{"root: UserRevokeRole alice nosuch", as("root", userRevokeRole("alice", "nosuch"))},
		{"root: UserRevokeRole nosuch reader", as("root", userRevokeRole("nosuch", "reader"))},
		{"root: UserGet alice", as("root", userGet("alice"))},
		{"alice: RoleGet writer (no longer its own)", as("alice", roleGet("writer"))},
		{"alice: Get /pub/a", as("alice", get("/pub/a"))},
		{"root: UserChangePassword alice", as("root", changePassword("alice", "alicepw2"))},
		{"alice (old token): Get /pub/a", as("alice", get("/pub/a"))},
		{"open alice:old password", open("alice-old", "alice", "alicepw")},
		{"open alice:new password", open("alice2", "alice", "alicepw2")},
		{"alice2: Get /pub/a", as("alice2", get("/pub/a"))},
		{"root: UserChangePassword nosuch", as("root", changePassword("nosuch", "x"))},
		{"root: UserDelete alice", as("root", userDelete("alice"))},
		{"alice2 (deleted user): Get /pub/a", as("alice2", get("/pub/a"))},
		{"root: UserDelete alice again", as("root", userDelete("alice"))},
		{"root: RoleDelete reader", as("root", roleDelete("reader"))},
		{"root: RoleGet reader", as("root", roleGet("reader"))},
		{"root: RoleDelete reader again", as("root", roleDelete("reader"))},
	}
}

// authTeardownSteps check the root user and role are protected while auth
// is enabled, then disable it.
func authTeardownSteps() []authStep {
	return []authStep{
		{"root: UserRevokeRole root root", as("root", userRevokeRole("root", "root"))},
		{"root: UserDelete root", as("root", userDelete("root"))},
		{"root: RoleDelete root", as("root", roleDelete("root"))},
		{"root: AuthEnable again", as("root", authEnable)},
		{"root: AuthStatus", as("root", authStatus)},
		{"root: AuthDisable", as("root", authDisable)},
		{"anon: Put /other o2", as("anon", put("/other", "o2"))},
		{"anon: Get prefix /", as("anon", get("/", clientv3.WithPrefix()))},
		{"anon: AuthStatus", as("anon", authStatus)},
		{"anon: AuthDisable again", as("anon", authDisable)},
		{"anon: AuthStatus", as("anon", authStatus)},
		{"anon: UserList", as("anon", userList)},
		{"anon: RoleList", as("anon", roleList)},
		{"root: Get /other (token of a disabled auth)", as("root", get("/other"))},
		{"anon: UserDelete root (auth disabled)", as("anon", userDelete("root"))},
		{"anon: AuthEnable without a root user", as("anon", authEnable)},
	}
}

// errStr is an error as its gRPC code and message. clientv3 turns known
// etcd errors into rpctypes.EtcdError, which keeps both.
func errStr(err error) string {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return fmt.Sprintf("err %v: %s", ee.Code(), ee.Error())
	}
	if st, ok := status.FromError(err); ok {
		return fmt.Sprintf("err %v: %s", st.Code(), st.Message())
	}
	return "err " + err.Error()
}

// res is f's view of r, or err's.
func res[T any](r T, err error, f func(T) string) string {
	if err != nil {
		return errStr(err)
	}
	return f(r)
}

// rev is the revision of r's header, and only that: ids and raft terms
// differ. r is a pointer to a response struct; clientv3 redefines most
// response types, which drops their GetHeader methods, and embeds the
// header in its lease ones, hence reflection.
func rev[T any](r T) string {
	v := reflect.ValueOf(r).Elem()
	f := v.FieldByName("Header")
	if !f.IsValid() {
		f = v.FieldByName("ResponseHeader")
	}
	h, _ := f.Interface().(*pb.ResponseHeader)
	return fmt.Sprintf("rev=%d", h.GetRevision())
}

func kvsStr(kvs []*mvccpb.KeyValue) string {
	var b []string
	for _, kv := range kvs {
		b = append(b, fmt.Sprintf("%s=%s@c%d/m%d/v%d lease=%t", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease != 0))
	}
	return "[" + strings.Join(b, " ") + "]"
}

func authStatus(ctx context.Context, c *clientv3.Client) string {
	r, err := c.AuthStatus(ctx)
	return res(r, err, func(r *clientv3.AuthStatusResponse) string {
		return fmt.Sprintf("%s enabled=%t auth_revision=%d", rev(r), r.Enabled, r.AuthRevision)
	})
}

func authEnable(ctx context.Context, c *clientv3.Client) string {
	r, err := c.AuthEnable(ctx)
	return res(r, err, rev)
}

func authDisable(ctx context.Context, c *clientv3.Client) string {
	r, err := c.AuthDisable(ctx)
	return res(r, err, rev)
}

// authenticate calls the Authenticate RPC itself; the token is random, so
// only its presence counts.
func authenticate(user, pass string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.Authenticate(ctx, user, pass)
		return res(r, err, func(r *clientv3.AuthenticateResponse) string {
			return fmt.Sprintf("%s token=%t", rev(r), r.Token != "")
		})
	}
}

func userAdd(name, pass string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.UserAdd(ctx, name, pass)
		return res(r, err, rev)
	}
}

func userAddNoPassword(name string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.UserAddWithOptions(ctx, name, "", &clientv3.UserAddOptions{NoPassword: true})
		return res(r, err, rev)
	}
}

func userDelete(name string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.UserDelete(ctx, name)
		return res(r, err, rev)
	}
}

func changePassword(name, pass string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.UserChangePassword(ctx, name, pass)
		return res(r, err, rev)
	}
}

func userGrantRole(user, role string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.UserGrantRole(ctx, user, role)
		return res(r, err, rev)
	}
}

func userRevokeRole(user, role string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.UserRevokeRole(ctx, user, role)
		return res(r, err, rev)
	}
}

// userGet keeps the roles in the server's order: etcd sorts them.
func userGet(name string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.UserGet(ctx, name)
		return res(r, err, func(r *clientv3.AuthUserGetResponse) string {
			return fmt.Sprintf("%s roles=%v", rev(r), r.Roles)
		})
	}
}

// userList and roleList keep the server's order: etcd sorts the names.
func userList(ctx context.Context, c *clientv3.Client) string {
	r, err := c.UserList(ctx)
	return res(r, err, func(r *clientv3.AuthUserListResponse) string {
		return fmt.Sprintf("%s users=%v", rev(r), r.Users)
	})
}

func roleList(ctx context.Context, c *clientv3.Client) string {
	r, err := c.RoleList(ctx)
	return res(r, err, func(r *clientv3.AuthRoleListResponse) string {
		return fmt.Sprintf("%s roles=%v", rev(r), r.Roles)
	})
}

func roleAdd(name string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.RoleAdd(ctx, name)
		return res(r, err, rev)
	}
}

func roleDelete(name string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.RoleDelete(ctx, name)
		return res(r, err, rev)
	}
}

// roleGet keeps the permissions in the server's order: etcd sorts them by
// key.
func roleGet(name string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.RoleGet(ctx, name)
		return res(r, err, func(r *clientv3.AuthRoleGetResponse) string {
			var perms []string
			for _, p := range r.Perm {
				perms = append(perms, fmt.Sprintf("%v[%q,%q)", p.PermType, p.Key, p.RangeEnd))
			}
			return fmt.Sprintf("%s perms=[%s]", rev(r), strings.Join(perms, " "))
		})
	}
}

func grantPerm(role, key, end string, typ clientv3.PermissionType) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.RoleGrantPermission(ctx, role, key, end, typ)
		return res(r, err, rev)
	}
}

func revokePerm(role, key, end string) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.RoleRevokePermission(ctx, role, key, end)
		return res(r, err, rev)
	}
}

func put(key, val string, opts ...clientv3.OpOption) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.Put(ctx, key, val, opts...)
		return res(r, err, func(r *clientv3.PutResponse) string {
			if r.PrevKv != nil {
				return fmt.Sprintf("%s prev=%s", rev(r), kvsStr([]*mvccpb.KeyValue{r.PrevKv}))
			}
			return rev(r)
		})
	}
}

func get(key string, opts ...clientv3.OpOption) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.Get(ctx, key, opts...)
		return res(r, err, func(r *clientv3.GetResponse) string {
			return fmt.Sprintf("%s count=%d kvs=%s", rev(r), r.Count, kvsStr(r.Kvs))
		})
	}
}

func del(key string, opts ...clientv3.OpOption) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.Delete(ctx, key, opts...)
		return res(r, err, func(r *clientv3.DeleteResponse) string {
			return fmt.Sprintf("%s deleted=%d", rev(r), r.Deleted)
		})
	}
}

func txnStr(r *clientv3.TxnResponse) string {
	var ops []string
	for _, op := range r.Responses {
		switch {
		case op.GetResponsePut() != nil:
			ops = append(ops, "put "+rev(op.GetResponsePut()))
		case op.GetResponseRange() != nil:
			ops = append(ops, "range "+kvsStr(op.GetResponseRange().Kvs))
		default:
			ops = append(ops, fmt.Sprintf("%T", op.Response))
		}
	}
	return fmt.Sprintf("%s succeeded=%t ops=[%s]", rev(r), r.Succeeded, strings.Join(ops, ", "))
}

func txnPubRW(ctx context.Context, c *clientv3.Client) string {
	r, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value("/pub/a"), "=", "v1")).
		Then(clientv3.OpPut("/rw", "t1")).
		Else(clientv3.OpGet("/pub/a")).
		Commit()
	return res(r, err, txnStr)
}

func txnThen(op clientv3.Op) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		r, err := c.Txn(ctx).Then(op).Commit()
		return res(r, err, txnStr)
	}
}

// txnIfOther compares a key alice may not read; the branch taken writes
// only /rw, which she may.
func txnIfOther(ctx context.Context, c *clientv3.Client) string {
	r, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision("/other"), ">", 0)).
		Then(clientv3.OpPut("/rw", "t2")).
		Commit()
	return res(r, err, txnStr)
}

func watchRespStr(r clientv3.WatchResponse) string {
	var evs []string
	for _, ev := range r.Events {
		evs = append(evs, fmt.Sprintf("%v %s=%s m%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision))
	}
	s := fmt.Sprintf("rev=%d created=%t canceled=%t", r.Header.Revision, r.Created, r.Canceled)
	if r.Canceled {
		s += fmt.Sprintf(" reason=%q err=%v", r.CancelReason, r.Err())
	}
	if len(evs) > 0 {
		s += " events=[" + strings.Join(evs, " ") + "]"
	}
	return s
}

// nextWatch is the next answer on wch, or why there is none.
func nextWatch(ctx context.Context, wch clientv3.WatchChan) string {
	select {
	case r, ok := <-wch:
		if !ok {
			return "closed"
		}
		return watchRespStr(r)
	case <-ctx.Done():
		return "no answer"
	}
}

// watchPubPrefix has alice watch a prefix she may read and root write a
// key in it once the watch exists.
func watchPubPrefix(s *authSession) string {
	alice, root := s.clients["alice"], s.clients["root"]
	if alice == nil || root == nil {
		return "no client alice or root"
	}
	ctx, cancel := context.WithTimeout(context.Background(), authStepTimeout)
	defer cancel()
	wch := alice.Watch(clientv3.WithRequireLeader(ctx), "/pub/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	created := nextWatch(ctx, wch)
	written := put("/pub/b", "b1")(ctx, root)
	return fmt.Sprintf("%s; root put %s; %s", created, written, nextWatch(ctx, wch))
}

// watchDenied watches what the client may not read. etcd answers with a
// created and canceled response (see rawWatch); clientv3 turns it into a
// canceled response carrying the error, then closes the channel.
func watchDenied(key string, opts ...clientv3.OpOption) func(context.Context, *clientv3.Client) string {
	return func(ctx context.Context, c *clientv3.Client) string {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		wch := c.Watch(wctx, key, append(opts, clientv3.WithCreatedNotify())...)
		first := nextWatch(ctx, wch)
		return first + "; then " + nextWatch(ctx, wch)
	}
}

// leaseSteps grant a lease as alice, attach /rw to it, look at it and
// revoke it: revoking needs write permission on every key attached. The
// lease id is left out: servers pick it.
func leaseSteps(s *authSession) string {
	c := s.clients["alice"]
	if c == nil {
		return "no client alice"
	}
	ctx, cancel := context.WithTimeout(context.Background(), authStepTimeout)
	defer cancel()
	g, err := c.Grant(ctx, 60)
	if err != nil {
		return "grant " + errStr(err)
	}
	out := []string{fmt.Sprintf("grant %s ttl=%d", rev(g), g.TTL)}
	out = append(out, "put "+put("/rw", "leased", clientv3.WithLease(g.ID))(ctx, c))
	ttl, err := c.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
	out = append(out, "ttl "+res(ttl, err, func(r *clientv3.LeaseTimeToLiveResponse) string {
		return fmt.Sprintf("%s granted=%d keys=%q", rev(r), r.GrantedTTL, r.Keys)
	}))
	rv, err := c.Revoke(ctx, g.ID)
	out = append(out, "revoke "+res(rv, err, rev))
	return strings.Join(out, "; ")
}

// leaseOfOthers: root attaches /other to a lease; alice may neither
// attach a key of hers to it nor revoke it, since she cannot write /other.
func leaseOfOthers(s *authSession) string {
	root, alice := s.clients["root"], s.clients["alice"]
	if root == nil || alice == nil {
		return "no client root or alice"
	}
	ctx, cancel := context.WithTimeout(context.Background(), authStepTimeout)
	defer cancel()
	g, err := root.Grant(ctx, 60)
	if err != nil {
		return "grant " + errStr(err)
	}
	out := []string{"root put " + put("/other", "leased", clientv3.WithLease(g.ID))(ctx, root)}
	out = append(out, "alice put "+put("/rw", "x", clientv3.WithLease(g.ID))(ctx, alice))
	rv, err := alice.Revoke(ctx, g.ID)
	out = append(out, "alice revoke "+res(rv, err, rev))
	rv, err = root.Revoke(ctx, g.ID)
	out = append(out, "root revoke "+res(rv, err, rev))
	return strings.Join(out, "; ")
}

// compact compacts at the current revision, which a Get of a key every
// client here may read gives.
func compact(ctx context.Context, c *clientv3.Client) string {
	r, err := c.Get(ctx, "/pub/a")
	if err != nil {
		return "get " + errStr(err)
	}
	cr, err := c.Compact(ctx, r.Header.Revision)
	return res(cr, err, rev)
}

func memberList(ctx context.Context, c *clientv3.Client) string {
	r, err := c.MemberList(ctx)
	return res(r, err, func(r *clientv3.MemberListResponse) string {
		var names []string
		for _, m := range r.Members {
			names = append(names, m.Name)
		}
		return fmt.Sprintf("%s members=%v", rev(r), names)
	})
}

// addLearner adds a learner that never starts: harmless to a single
// member's quorum should it be let through.
func addLearner(ctx context.Context, c *clientv3.Client) string {
	r, err := c.MemberAddAsLearner(ctx, []string{"http://127.0.0.1:1"})
	return res(r, err, func(r *clientv3.MemberAddResponse) string {
		return fmt.Sprintf("%s members=%d", rev(r), len(r.Members))
	})
}

func alarmList(ctx context.Context, c *clientv3.Client) string {
	r, err := c.AlarmList(ctx)
	return res(r, err, func(r *clientv3.AlarmResponse) string {
		return fmt.Sprintf("%s alarms=%d", rev(r), len(r.Alarms))
	})
}

// statusOf and hashKVOf need the endpoint, which only the session knows.
// Status's version, sizes and indexes differ between the servers.
func statusOf(name string) func(*authSession) string {
	return func(s *authSession) string {
		return as(name, func(ctx context.Context, c *clientv3.Client) string {
			r, err := c.Status(ctx, s.addr)
			return res(r, err, func(r *clientv3.StatusResponse) string {
				return fmt.Sprintf("%s leader=%t", rev(r), r.Leader == r.Header.MemberId)
			})
		})(s)
	}
}

func hashKVOf(name string) func(*authSession) string {
	return func(s *authSession) string {
		return as(name, func(ctx context.Context, c *clientv3.Client) string {
			r, err := c.HashKV(ctx, s.addr, 0)
			return res(r, err, func(r *clientv3.HashKVResponse) string { return rev(r) })
		})(s)
	}
}

// rawWatch asks, as user (none when user is empty), for each watch of
// creates on one stream over plain gRPC: clientv3 replaces a refused
// watch's answer with one of its own, which hides what the server sent.
func rawWatch(user, pass string, creates ...*pb.WatchCreateRequest) func(*authSession) string {
	return func(s *authSession) string {
		ctx, cancel := context.WithTimeout(context.Background(), authStepTimeout)
		defer cancel()
		conn, ctx, failed := rawDial(ctx, s.addr, user, pass)
		if conn == nil {
			return failed
		}
		defer conn.Close()
		stream, err := pb.NewWatchClient(conn).Watch(ctx)
		if err != nil {
			return "watch " + errStr(err)
		}
		var out []string
		for _, cr := range creates {
			out = append(out, rawWatchCreate(stream, cr))
		}
		return strings.Join(out, "; ")
	}
}

// watchesOtherPubAll are the watches of the raw watch steps: a key the
// user may not read, a prefix it may, the whole key space, and the
// forbidden key from a negative revision.
var watchesOtherPubAll = []*pb.WatchCreateRequest{
	{Key: []byte("/other")},
	{Key: []byte("/pub/"), RangeEnd: []byte("/pub0")},
	{RangeEnd: []byte{0}},
	{Key: []byte("/other"), StartRevision: -1},
}

// rawEmptyToken sends requests with an empty token, which etcd takes for
// an invalid token rather than for none.
func rawEmptyToken(s *authSession) string {
	ctx, cancel := context.WithTimeout(context.Background(), authStepTimeout)
	defer cancel()
	conn, ctx, failed := rawDial(ctx, s.addr, "", "")
	if conn == nil {
		return failed
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, "")
	_, err := pb.NewKVClient(conn).Range(ctx, &pb.RangeRequest{Key: []byte("/pub/a")})
	out := "range " + errStr(err)
	stream, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		return out + "; watch " + errStr(err)
	}
	return out + "; " + rawWatchCreate(stream, &pb.WatchCreateRequest{Key: []byte("/pub/a")})
}

// rawDial connects over plain gRPC and, unless user is empty,
// authenticates as user: the context it returns carries the token. It
// returns no connection, and why, if either fails.
func rawDial(ctx context.Context, addr, user, pass string) (*grpc.ClientConn, context.Context, string) {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, ctx, "dial " + err.Error()
	}
	if user == "" {
		return conn, ctx, ""
	}
	r, err := pb.NewAuthClient(conn).Authenticate(ctx, &pb.AuthenticateRequest{Name: user, Password: pass})
	if err != nil {
		conn.Close()
		return nil, ctx, "authenticate " + errStr(err)
	}
	return conn, metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, r.Token), ""
}

func rawWatchCreate(stream pb.Watch_WatchClient, cr *pb.WatchCreateRequest) string {
	req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: cr}}
	if err := stream.Send(req); err != nil {
		return "send " + errStr(err)
	}
	r, err := stream.Recv()
	if err != nil {
		return "recv " + errStr(err)
	}
	return fmt.Sprintf("%s id=%d created=%t canceled=%t reason=%q events=%d",
		rev(r), r.WatchId, r.Created, r.Canceled, r.CancelReason, len(r.Events))
}
