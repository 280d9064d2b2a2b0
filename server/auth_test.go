package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// enableAuth adds root (password "pw") and a user app (password "apppw",
// read-write on the prefix /app), and turns auth on.
func enableAuth(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	c := ctx(t)
	steps := []func() error{
		func() error { _, err := cli.UserAdd(c, "root", "pw"); return err },
		func() error { _, err := cli.RoleAdd(c, "root"); return err },
		func() error { _, err := cli.UserGrantRole(c, "root", "root"); return err },
		func() error { _, err := cli.UserAdd(c, "app", "apppw"); return err },
		func() error { _, err := cli.RoleAdd(c, "app"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(c, "app", "/app", clientv3.GetPrefixRangeEnd("/app"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserGrantRole(c, "app", "app"); return err },
		func() error { _, err := cli.AuthEnable(c); return err },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
}

func userClient(t *testing.T, endpoints []string, user, pass string) *clientv3.Client {
	t.Helper()
	return userClientWith(t, endpoints, nil, user, pass)
}

// userClientWith is userClient over TLS when tlsCfg is set.
func userClientWith(t *testing.T, endpoints []string, tlsCfg *tls.Config, user, pass string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, Username: user, Password: pass, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("client as %s: %v", user, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestAuthRestart: users, roles, permissions and auth being on survive a
// restart; tokens do not (clients authenticate again).
func TestAuthRestart(t *testing.T) {
	dir := t.TempDir()
	s, cli := testServer(t, dir, func(c *Config) { c.BcryptCost = 4 })
	enableAuth(t, cli)
	app := userClient(t, s.Addrs(), "app", "apppw")
	if _, err := app.Put(ctx(t), "/app/k", "v"); err != nil {
		t.Fatal(err)
	}
	app.Close()
	cli.Close()
	s.Stop()
	s, anon := testServer(t, dir, func(c *Config) { c.BcryptCost = 4 })
	if _, err := anon.Get(ctx(t), "/app/k"); err == nil || err.Error() != rpctypes.ErrUserEmpty.Error() {
		t.Fatalf("anonymous get after restart: %v, want %v", err, rpctypes.ErrUserEmpty)
	}
	app = userClient(t, s.Addrs(), "app", "apppw")
	if r, err := app.Get(ctx(t), "/app/k"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("app's get after restart: %v %v", r, err)
	}
	if _, err := app.Put(ctx(t), "/other", "v"); err == nil || err.Error() != rpctypes.ErrPermissionDenied.Error() {
		t.Fatalf("app's put outside its prefix: %v", err)
	}
}

// TestAuthCluster: a token from one member works on the others (every
// member applies the Authenticate), for forwarded writes and for
// linearizable reads on a follower.
func TestAuthCluster(t *testing.T) {
	tc := newTestClusterWith(t, 3, "http", func(c *Config) { c.BcryptCost = 4 })
	tc.leader()
	enableAuth(t, tc.client(0))
	app := userClient(t, tc.cfgs[0].AdvertiseClientURLs, "app", "apppw")
	if _, err := app.Put(ctx(t), "/app/a", "1"); err != nil {
		t.Fatal(err)
	}
	resp, err := app.Auth.Authenticate(ctx(t), "app", "apppw")
	if err != nil {
		t.Fatal(err)
	}
	other := tc.client(2)
	withToken := metadata.NewOutgoingContext(ctx(t), metadata.Pairs("token", resp.Token))
	var last error
	for range 250 { // the follower applies the Authenticate shortly after the leader
		if _, last = other.Put(withToken, "/app/b", "2"); last == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("put with member 0's token on member 2: %v", last)
	}
	r, err := other.Get(withToken, "/app/", clientv3.WithPrefix())
	if err != nil || len(r.Kvs) != 2 {
		t.Fatalf("linearizable get on member 2: %v %v", r, err)
	}
	if _, err := other.Get(ctx(t), "/app/a"); err == nil {
		t.Fatal("a get without a token succeeded on member 2")
	}
}

// TestAuthJWT: with --auth-token jwt, tokens are signed JWTs naming the
// user and auth revision; a forged or stale one is refused.
func TestAuthJWT(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalECPrivateKey(key)
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	priv, pub := filepath.Join(dir, "jwt.key"), filepath.Join(dir, "jwt.pub")
	os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: privDER}), 0o600)
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600)
	s, cli := testServer(t, t.TempDir(), func(c *Config) {
		c.BcryptCost = 4
		c.AuthToken = "jwt,pub-key=" + pub + ",priv-key=" + priv + ",sign-method=ES256,ttl=1m"
	})
	enableAuth(t, cli)
	app := userClient(t, s.Addrs(), "app", "apppw")
	if _, err := app.Put(ctx(t), "/app/x", "1"); err != nil {
		t.Fatalf("put with a JWT: %v", err)
	}
	resp, err := app.Auth.Authenticate(ctx(t), "app", "apppw")
	if err != nil || strings.Count(resp.Token, ".") != 2 {
		t.Fatalf("authenticate: %v %v", resp, err)
	}
	forged := resp.Token[:len(resp.Token)-4] + "AAAA"
	if _, err := cli.Put(metadata.NewOutgoingContext(ctx(t), metadata.Pairs("token", forged)), "/app/y", "1"); err == nil || err.Error() != rpctypes.ErrInvalidAuthToken.Error() {
		t.Fatalf("put with a forged JWT: %v", err)
	}
	root := userClient(t, s.Addrs(), "root", "pw")
	if _, err := root.RoleAdd(ctx(t), "other"); err != nil {
		t.Fatal(err)
	}
	stale := metadata.NewOutgoingContext(ctx(t), metadata.Pairs("token", resp.Token))
	if _, err := cli.Put(stale, "/app/y", "1"); err == nil || err.Error() != rpctypes.ErrAuthOldRevision.Error() {
		t.Fatalf("put with a JWT from before an auth change: %v", err)
	}
	if _, err := app.Put(ctx(t), "/app/z", "1"); err != nil {
		t.Fatalf("clientv3 authenticates again after an auth change: %v", err)
	}
	checkReads(t, app, root)
	if _, err := cli.Get(stale, "/app/x"); err == nil || err.Error() != rpctypes.ErrAuthOldRevision.Error() {
		t.Fatalf("get with a JWT from before an auth change: %v", err)
	}
}

// checkReads: the user's reads (served off the loop for a JWT or a
// certificate) are checked as etcd checks them, linearizable or
// serializable, gets and watches: inside /app allowed, outside refused,
// and refused at once after root revokes the permission.
func checkReads(t *testing.T, user, root *clientv3.Client) {
	t.Helper()
	for _, opts := range [][]clientv3.OpOption{nil, {clientv3.WithSerializable()}} {
		if _, err := user.Get(ctx(t), "/app/x", opts...); err != nil {
			t.Fatalf("get in range %v: %v", opts, err)
		}
		if _, err := user.Get(ctx(t), "/app/", append(opts, clientv3.WithPrefix())...); err != nil {
			t.Fatalf("get of the permitted prefix %v: %v", opts, err)
		}
		for _, key := range []string{"/other", "/ap"} {
			if _, err := user.Get(ctx(t), key, append(opts, clientv3.WithPrefix())...); err == nil || err.Error() != rpctypes.ErrPermissionDenied.Error() {
				t.Fatalf("get of %s %v: %v, want permission denied", key, opts, err)
			}
		}
	}
	wctx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	if wr := <-user.Watch(wctx, "/other"); !wr.Canceled || wr.Err() == nil {
		t.Fatalf("watch outside the permission: %+v", wr)
	}
	if _, err := root.RoleRevokePermission(ctx(t), "app", "/app", clientv3.GetPrefixRangeEnd("/app")); err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]clientv3.OpOption{nil, {clientv3.WithSerializable()}} {
		if _, err := user.Get(ctx(t), "/app/x", opts...); err == nil || err.Error() != rpctypes.ErrPermissionDenied.Error() {
			t.Fatalf("get %v after the revoke: %v, want permission denied", opts, err)
		}
	}
}

// TestAuthLeasePut: a user may not attach a key to a lease that holds a
// key it cannot write, as etcd refuses it (the user could not revoke it).
func TestAuthLeasePut(t *testing.T) {
	s, cli := testServer(t, t.TempDir(), func(c *Config) { c.BcryptCost = 4 })
	l, err := cli.Grant(ctx(t), 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx(t), "/secret", "x", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	enableAuth(t, cli)
	app := userClient(t, s.Addrs(), "app", "apppw")
	if _, err := app.Put(ctx(t), "/app/k", "v", clientv3.WithLease(l.ID)); err == nil || err.Error() != rpctypes.ErrPermissionDenied.Error() {
		t.Fatalf("attaching to a lease holding another user's key: %v", err)
	}
	own, err := app.Grant(ctx(t), 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Put(ctx(t), "/app/k", "v", clientv3.WithLease(own.ID)); err != nil {
		t.Fatalf("attaching to the user's own lease: %v", err)
	}
	if _, err := app.Revoke(ctx(t), l.ID); err == nil {
		t.Fatal("revoking a lease holding another user's key succeeded")
	}
}

// TestAuthSimpleTokenReads: reads with simple tokens are checked off the
// loop once the loop has said whom the token names, and still as etcd
// checks them: a token of a deleted user is refused at once, a token
// used only for reads stays alive (the member renews it), and one left
// unused past --auth-token-ttl lapses.
func TestAuthSimpleTokenReads(t *testing.T) {
	s, cli := testServer(t, t.TempDir(), func(c *Config) {
		c.BcryptCost = 4
		// Two seconds: a stall of the test between reads must pass it
		// before the token lapses under them.
		c.AuthTokenTTL = 2 * time.Second
	})
	enableAuth(t, cli)
	root := userClient(t, s.Addrs(), "root", "pw")
	app := userClient(t, s.Addrs(), "app", "apppw")
	if _, err := app.Put(ctx(t), "/app/x", "1"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Auth.Authenticate(ctx(t), "app", "apppw")
	if err != nil {
		t.Fatal(err)
	}
	tok := resp.Token
	raw := func() context.Context { return metadata.NewOutgoingContext(ctx(t), metadata.Pairs("token", tok)) }
	// Reads alone, for longer than the token's lifetime: it must stay
	// alive.
	for range 30 {
		if _, err := cli.Get(raw(), "/app/x", clientv3.WithSerializable()); err != nil {
			t.Fatalf("read with a token in use: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := cli.Put(raw(), "/app/x", "2"); err != nil {
		t.Fatalf("write with a token kept alive by reads: %v", err)
	}
	time.Sleep(5 * time.Second)
	if _, err := cli.Get(raw(), "/app/x"); err == nil || err.Error() != rpctypes.ErrInvalidAuthToken.Error() {
		t.Fatalf("read with a lapsed token: %v", err)
	}
	checkReads(t, app, root)
	resp, err = cli.Auth.Authenticate(ctx(t), "app", "apppw")
	if err != nil {
		t.Fatal(err)
	}
	tok = resp.Token
	if _, err := root.RoleGrantPermission(ctx(t), "app", "/app", clientv3.GetPrefixRangeEnd("/app"), clientv3.PermissionType(clientv3.PermRead)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(raw(), "/app/x", clientv3.WithSerializable()); err != nil {
		t.Fatalf("read after the grant: %v", err)
	}
	if _, err := root.UserDelete(ctx(t), "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(raw(), "/app/x", clientv3.WithSerializable()); err == nil || err.Error() != rpctypes.ErrInvalidAuthToken.Error() {
		t.Fatalf("read with a deleted user's token: %v", err)
	}
}
