package tests

import (
	"flag"
	"strings"
	"testing"
)

// etcdctlAuthBin lets TestEtcdctlAuth run against another server binary
// taking etcd's flags, such as a real etcd (bin/etcd-ref/etcd), to check
// the expected outputs themselves.
var etcdctlAuthBin = flag.String("etcdctlauth.bin", "", "TestEtcdctlAuth: a server binary to run instead of detcd (for example a real etcd)")

// ctlAuthStep is one etcdctl command and what it must print: stdout
// exactly on success, or part of stderr when it must fail.
type ctlAuthStep struct {
	args    []string
	out     string // the exact stdout, when the command must succeed
	failErr string // what stderr must contain, when it must fail
}

// TestEtcdctlAuth drives auth with etcdctl as an operator would: a root
// user and role, a role with a prefix permission for an application user,
// auth enable, the application's allowed and refused requests, and auth
// disable. The outputs are those of etcdctl against etcd 3.7.3.
func TestEtcdctlAuth(t *testing.T) {
	detcdBin, ctl := binaries(t)
	c := &ctlCluster{t: t, ctlBin: ctl, bin: detcdBin}
	ep := []string{startCtlAuthServer(t).endpoint()}
	root, app := "--user=root:rootpw", "--user=app:apppw"
	steps := []ctlAuthStep{
		{args: []string{"user", "add", "root", "--new-user-password=rootpw"}, out: "User root created\n"},
		{args: []string{"role", "add", "root"}, out: "Role root created\n"},
		{args: []string{"user", "grant-role", "root", "root"}, out: "Role root is granted to user root\n"},
		{args: []string{"role", "add", "r"}, out: "Role r created\n"},
		{args: []string{"role", "grant-permission", "r", "readwrite", "/app", "--prefix"}, out: "Role r updated\n"},
		{args: []string{"user", "add", "app", "--new-user-password=apppw"}, out: "User app created\n"},
		{args: []string{"user", "grant-role", "app", "r"}, out: "Role r is granted to user app\n"},
		{args: []string{"auth", "enable"}, out: "Authentication Enabled\n"},

		{args: []string{"put", "/app/x", "1"}, failErr: "Error: etcdserver: user name is empty"},
		{args: []string{app, "put", "/app/x", "1"}, out: "OK\n"},
		{args: []string{app, "get", "/app/x"}, out: "/app/x\n1\n"},
		{args: []string{app, "put", "/other", "1"}, failErr: "Error: etcdserver: permission denied"},
		{args: []string{"--user=app:wrong", "get", "/app/x"}, failErr: "Error: etcdserver: authentication failed, invalid user ID or password"},
		{args: []string{app, "user", "list"}, failErr: "Error: etcdserver: permission denied"},

		{args: []string{root, "user", "list"}, out: "app\nroot\n"},
		{args: []string{root, "role", "list"}, out: "r\nroot\n"},
		{args: []string{root, "role", "get", "r"}, out: "Role r\nKV Read:\n\t[/app, /apq) (prefix /app)\nKV Write:\n\t[/app, /apq) (prefix /app)\n"},
		{args: []string{root, "role", "get", "root"}, out: "Role root\nKV Read:\n\t[, <open ended>\nKV Write:\n\t[, <open ended>\n"},
		{args: []string{root, "user", "get", "app"}, out: "User: app\nRoles: r\n"},
		{args: []string{root, "user", "get", "app", "--detail"}, out: "User: app\n\nRole r\nKV Read:\n\t[/app, /apq) (prefix /app)\nKV Write:\n\t[/app, /apq) (prefix /app)\n"},
		// The auth revision counts the changes: 7 above and the first one.
		// Enabling does not count.
		{args: []string{root, "auth", "status"}, out: "Authentication Status: true\nAuthRevision: 8\n"},
		{args: []string{root, "user", "delete", "root"}, failErr: "Error: etcdserver: invalid auth management"},
		{args: []string{root, "user", "revoke-role", "root", "root"}, failErr: "Error: etcdserver: invalid auth management"},
		{args: []string{root, "auth", "disable"}, out: "Authentication Disabled\n"},

		{args: []string{"put", "/other", "1"}, out: "OK\n"},
		{args: []string{"get", "/other"}, out: "/other\n1\n"},
		{args: []string{"auth", "status"}, out: "Authentication Status: false\nAuthRevision: 9\n"},
	}
	for _, st := range steps {
		runCtlAuthStep(c, ep, st)
	}
}

// runCtlAuthStep runs one step and checks its outcome. etcdctl also logs
// its client's retries on stderr as JSON, so stderr is only searched for
// the failure's own message.
func runCtlAuthStep(c *ctlCluster, ep []string, st ctlAuthStep) {
	c.t.Helper()
	if st.failErr == "" {
		if got := c.ctl(ep, st.args...); got != st.out {
			c.t.Fatalf("etcdctl %v printed %q, want %q", st.args, got, st.out)
		}
		return
	}
	out, err := c.run(ep, true, st.args...)
	if err == nil {
		c.t.Fatalf("etcdctl %v succeeded, printing %q; want it to fail with %q", st.args, out, st.failErr)
	}
	if !strings.Contains(err.Error(), st.failErr) {
		c.t.Fatalf("etcdctl %v: %v\nwant the line %q", st.args, err, st.failErr)
	}
}

// startCtlAuthServer starts detcd, or the -etcdctlauth.bin binary with
// the same flags, on a fresh data dir.
func startCtlAuthServer(t *testing.T) *detcdProc {
	t.Helper()
	if *etcdctlAuthBin == "" {
		return startDetcd(t, t.TempDir(), 0, 0)
	}
	clientPort, peerPort := freePort(t), freePort(t)
	client, peer := loopbackURL(clientPort), loopbackURL(peerPort)
	p := startProc(t, "server", *etcdctlAuthBin,
		"--name", "default", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default="+peer, "--log-level", "warn")
	waitHealthy(t, p, client)
	return &detcdProc{proc: p, clientPort: clientPort, peerPort: peerPort}
}
