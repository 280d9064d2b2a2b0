package tests

// Snapshots in etcd's format, both ways: detcd's Maintenance.Snapshot
// stream is etcd's database file, which etcdutl (linked in here, as
// go.etcd.io/etcd/etcdutl/v3/snapshot) reads, checks and restores for a
// real etcd 3.7.3 (embedded) to serve; and `detcd snapshot restore` takes
// what etcd wrote. The state compared after each hop is everything a
// restore keeps: keys with their revisions and versions, the HashKV at the
// same revision, the compaction point, leases with their keys, users,
// roles and the auth revision.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/protobuf/testing/protocmp"
	"pgregory.net/rapid"

	"github.com/detcd/detcd/server"
)

const snapTimeout = 30 * time.Second

// TestSnapshotToEtcd: detcd's snapshot passes etcdutl's status and hash
// check with the revision and key count of etcd's snapshot of the same
// history, and the real etcd restored from it serves detcd's state.
func TestSnapshotToEtcd(t *testing.T) {
	detcdAddr, _ := startInProcDetcd(t, true)
	etcdAddr, _ := startEmbeddedEtcd(t, true)
	for _, addr := range []string{detcdAddr, etcdAddr} {
		snapHistory(t, addr)
	}
	want := readSnapState(t, detcdAddr)
	detcdFile, etcdFile := saveSnap(t, detcdAddr), saveSnap(t, etcdAddr)

	got, err := snapshot.NewV3(zap.NewNop()).Status(detcdFile)
	if err != nil {
		t.Fatalf("etcdutl snapshot status of detcd's snapshot: %v", err)
	}
	ref, err := snapshot.NewV3(zap.NewNop()).Status(etcdFile)
	if err != nil {
		t.Fatal(err)
	}
	// Version is left out: etcd writes its storage version some time
	// after it starts.
	if got.Revision != ref.Revision || got.TotalKey != ref.TotalKey {
		t.Errorf("etcdutl status: detcd's snapshot %+v, etcd's %+v", got, ref)
	}

	etcdRestored := restoreIntoEtcd(t, detcdFile)
	if diff := cmp.Diff(want, readSnapState(t, etcdRestored), protocmp.Transform()); diff != "" {
		t.Errorf("etcd restored from detcd's snapshot (-detcd +etcd):\n%s", diff)
	}
}

// TestSnapshotRoundTrip: real etcd -> snapshot -> detcd -> snapshot ->
// real etcd ends with the state it started with; detcd also restores a
// stopped etcd member's database file, and its status agrees with
// etcdutl's.
func TestSnapshotRoundTrip(t *testing.T) {
	etcdDir := filepath.Join(t.TempDir(), "etcd")
	etcdAddr, stopEtcd := startEmbeddedEtcd(t, true, func(c *embed.Config) { c.Dir = etcdDir })
	snapHistory(t, etcdAddr)
	want := readSnapState(t, etcdAddr)
	etcdFile := saveSnap(t, etcdAddr)

	st, size, err := server.SnapshotStatus(etcdFile)
	if err != nil {
		t.Fatalf("detcd snapshot status of etcd's snapshot: %v", err)
	}
	ref, err := snapshot.NewV3(zap.NewNop()).Status(etcdFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != ref.Revision || st.Keys != ref.TotalKey || st.Hash != want.Hash || size != fileSize(t, etcdFile) {
		t.Errorf("detcd snapshot status: %+v, %d B; etcdutl: %+v; HashKV %d", st, size, ref, want.Hash)
	}

	detcdAddr := restoreIntoDetcd(t, etcdFile, server.RestoreOptions{})
	if diff := cmp.Diff(want, readSnapState(t, detcdAddr), protocmp.Transform()); diff != "" {
		t.Fatalf("detcd restored from etcd's snapshot (-etcd +detcd):\n%s", diff)
	}
	back := restoreIntoEtcd(t, saveSnap(t, detcdAddr))
	if diff := cmp.Diff(want, readSnapState(t, back), protocmp.Transform()); diff != "" {
		t.Errorf("etcd after the round trip (-before +after):\n%s", diff)
	}

	// A stopped member's database file has no hash: as etcdutl, detcd
	// takes it with --skip-hash-check only.
	stopEtcd()
	db := filepath.Join(etcdDir, "member", "snap", "db")
	if err := server.Restore(restoreConfig(t.TempDir(), freePort(t)), db, server.RestoreOptions{}); err == nil {
		t.Error("restore of member/snap/db without --skip-hash-check was accepted")
	}
	if st, _, err := server.SnapshotStatus(db); err != nil || st.Revision != want.Rev || st.Hash != want.Hash {
		t.Errorf("detcd snapshot status of member/snap/db: %+v %v; want revision %d, HashKV %d", st, err, want.Rev, want.Hash)
	}
	fromDB := restoreIntoDetcd(t, db, server.RestoreOptions{SkipHashCheck: true})
	if diff := cmp.Diff(want, readSnapState(t, fromDB), protocmp.Transform()); diff != "" {
		t.Errorf("detcd restored from etcd's member/snap/db (-etcd +detcd):\n%s", diff)
	}
}

// snapHistory writes a history with every kind of state a snapshot
// carries: puts, overwrites, deletes, a multi-key transaction, a
// compaction, leases with and without keys, users, roles, permissions.
func snapHistory(t *testing.T, addr string) {
	t.Helper()
	cli := newSnapClient(t, addr, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), snapTimeout)
	defer cancel()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	l1, err := cli.Grant(ctx, 3600)
	must(l1, err)
	must(cli.Grant(ctx, 600))
	for i := range 20 {
		must(cli.Put(ctx, fmt.Sprintf("k%02d", i), fmt.Sprint("v", i)))
	}
	must(cli.Put(ctx, "leased", "x", clientv3.WithLease(l1.ID)))
	must(cli.Put(ctx, "k03", "again"))
	must(cli.Delete(ctx, "k04"))
	must(cli.Delete(ctx, "k1", clientv3.WithPrefix()))
	must(cli.Txn(ctx).Then(clientv3.OpPut("t1", "a"), clientv3.OpPut("t2", "b"), clientv3.OpDelete("k05"), clientv3.OpPut("k06", "txn")).Commit())
	mid, err := cli.Put(ctx, "k07", "before compaction")
	must(mid, err)
	must(cli.Delete(ctx, "k08"))
	must(cli.Compact(ctx, mid.Header.Revision+1, clientv3.WithCompactPhysical()))
	must(cli.Put(ctx, "k08", "reborn"))
	must(cli.Put(ctx, "k07", "after compaction"))
	must(cli.Delete(ctx, "t2"))
	must(cli.RoleAdd(ctx, "root"))
	must(cli.UserAdd(ctx, "root", "rootpw"))
	must(cli.UserGrantRole(ctx, "root", "root"))
	must(cli.RoleAdd(ctx, "reader"))
	must(cli.RoleGrantPermission(ctx, "reader", "k", "l", clientv3.PermissionType(clientv3.PermRead)))
	must(cli.UserAdd(ctx, "alice", "alicepw"))
	must(cli.UserGrantRole(ctx, "alice", "reader"))
	must(cli.AuthEnable(ctx))
}

// snapState is what a restore must keep.
type snapState struct {
	Rev int64
	// Hash is the HashKV at Rev. (Its compact revision is left out: for
	// a hash kept from a compaction at that revision etcd reports -1, for
	// one computed afresh after a restart the compaction point.)
	Hash        uint32
	KVs         []*pb.RangeResponse
	Leases      []snapLease
	Users       []snapUser
	Roles       []snapRole
	AuthEnabled bool
	AuthRev     uint64
}

type snapUser struct {
	Name  string
	Roles []string
}

type snapRole struct {
	Name  string
	Perms []*authpb.Permission
}

type snapLease struct {
	ID, TTL int64
	Keys    []string
}

// readSnapState reads the state of the member at addr, as root.
func readSnapState(t *testing.T, addr string) snapState {
	t.Helper()
	cli := newSnapClient(t, addr, "root", "rootpw")
	ctx, cancel := context.WithTimeout(context.Background(), snapTimeout)
	defer cancel()
	var s snapState
	all, err := cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	s.Rev = all.Header.Revision
	hash, err := cli.HashKV(ctx, cli.Endpoints()[0], s.Rev)
	if err != nil {
		t.Fatal(err)
	}
	s.Hash = hash.Hash
	// Every revision from the compaction point on reads the same, and
	// those below it are compacted.
	for rev := s.Rev; rev >= 1; rev-- {
		r, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(rev))
		if errors.Is(err, rpctypes.ErrCompacted) {
			break
		}
		if err != nil {
			t.Fatalf("get at %d: %v", rev, err)
		}
		s.KVs = append(s.KVs, &pb.RangeResponse{Kvs: r.Kvs, Count: r.Count})
	}
	leases, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Leases {
		ttl, err := cli.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		sl := snapLease{ID: int64(l.ID), TTL: ttl.GrantedTTL}
		for _, k := range ttl.Keys {
			sl.Keys = append(sl.Keys, string(k))
		}
		slices.Sort(sl.Keys)
		s.Leases = append(s.Leases, sl)
	}
	sort.Slice(s.Leases, func(i, j int) bool { return s.Leases[i].ID < s.Leases[j].ID })
	users, err := cli.UserList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users.Users {
		r, err := cli.UserGet(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		s.Users = append(s.Users, snapUser{Name: u, Roles: r.Roles})
	}
	roles, err := cli.RoleList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range roles.Roles {
		r, err := cli.RoleGet(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		s.Roles = append(s.Roles, snapRole{Name: name, Perms: r.Perm})
	}
	st, err := cli.AuthStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.AuthEnabled, s.AuthRev = st.Enabled, st.AuthRevision
	return s
}

func newSnapClient(t *testing.T, addr, user, pass string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: snapTimeout,
		Username: user, Password: pass, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// saveSnap writes the member's snapshot to a file, as etcdctl snapshot
// save does.
func saveSnap(t *testing.T, addr string) string {
	t.Helper()
	cli := newSnapClient(t, addr, "root", "rootpw")
	ctx, cancel := context.WithTimeout(context.Background(), snapTimeout)
	defer cancel()
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("snapshot stream: %v", err)
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func fileSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// restoreIntoEtcd restores a snapshot file with etcdutl into a new data
// directory, starts the embedded etcd on it and returns its address.
func restoreIntoEtcd(t *testing.T, file string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored.etcd")
	peer := mustURL(t, loopbackURL(freePort(t)))
	err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath: file, Name: "default", OutputDataDir: dir, PeerURLs: []string{peer.String()},
		InitialCluster: "default=" + peer.String(), InitialClusterToken: "etcd-cluster",
	})
	if err != nil {
		t.Fatalf("etcdutl snapshot restore: %v", err)
	}
	addr, _ := startEmbeddedEtcd(t, true, func(c *embed.Config) {
		c.Dir = dir
		c.ListenPeerUrls, c.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		c.InitialCluster = "default=" + peer.String()
	})
	return addr
}

func restoreConfig(dir string, peerPort int) server.Config {
	cfg := server.DefaultConfig()
	peer := loopbackURL(peerPort)
	cfg.DataDir, cfg.InitialCluster, cfg.InitialAdvertisePeerURLs = dir, "default="+peer, []string{peer}
	cfg.ListenPeerURLs = []string{peer}
	return cfg
}

// restoreIntoDetcd restores a snapshot file as `detcd snapshot restore`
// does, starts detcd on it and returns its address.
func restoreIntoDetcd(t *testing.T, file string, opts server.RestoreOptions) string {
	t.Helper()
	rc := restoreConfig(filepath.Join(t.TempDir(), "restored"), freePort(t))
	if err := server.Restore(rc, file, opts); err != nil {
		t.Fatalf("detcd snapshot restore: %v", err)
	}
	addr, _ := startInProcDetcd(t, true, func(c *server.Config) {
		c.DataDir, c.InitialCluster = rc.DataDir, rc.InitialCluster
		c.ListenPeerURLs, c.InitialAdvertisePeerURLs = rc.ListenPeerURLs, rc.InitialAdvertisePeerURLs
	})
	return addr
}

var snapCostKeys = flag.Int("snapcost.keys", 0, "TestSnapshotCost: keys to fill detcd and etcd with before timing their Snapshot streams (0 skips the test)")

// TestSnapshotCost measures, for the README, what a Snapshot stream costs
// on detcd and on etcd holding the same keys (-snapcost.keys, 100 bytes
// each): wall time, stream size, and the most the Go heap grew while it
// ran (both servers live in this process; etcd's stream comes from its
// mmapped file). It reports; it asserts nothing about the numbers.
func TestSnapshotCost(t *testing.T) {
	if *snapCostKeys == 0 {
		t.Skip("give -snapcost.keys N")
	}
	detcdAddr, _ := startInProcDetcd(t, true)
	etcdAddr, _ := startEmbeddedEtcd(t, true)
	value := strings.Repeat("v", 100)
	for _, side := range []struct{ name, addr string }{{"detcd", detcdAddr}, {"etcd", etcdAddr}} {
		cli := newSnapClient(t, side.addr, "", "")
		start := time.Now()
		for i := 0; i < *snapCostKeys; i += maxTxnOps {
			var ops []clientv3.Op
			for j := i; j < min(i+maxTxnOps, *snapCostKeys); j++ {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("/registry/key/%08d", j), value))
			}
			ctx, cancel := context.WithTimeout(context.Background(), snapTimeout)
			_, err := cli.Txn(ctx).Then(ops...).Commit()
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: %d keys written in %v", side.name, *snapCostKeys, time.Since(start).Round(time.Millisecond))
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		peak := base.HeapInuse
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var ms runtime.MemStats
			for {
				select {
				case <-done:
					return
				case <-time.After(5 * time.Millisecond):
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
				}
			}
		}()
		start = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		rc, err := cli.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		took := time.Since(start)
		rc.Close()
		cancel()
		close(done)
		<-sampled
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: Snapshot of %d keys: %d bytes in %v; heap grew by at most %d MiB", side.name, *snapCostKeys, n, took.Round(time.Millisecond), (peak-base.HeapInuse)>>20)
	}
}

var snapHistories = flag.Int("snaphist.n", 4, "TestSnapshotHistories: how many generated histories")

// TestSnapshotHistories: for histories drawn by rapid's generators (puts,
// deletes, multi-key transactions, compactions, lease grants, revokes and
// attached keys, users, roles, permissions, auth enabled last), detcd's
// snapshot restored into detcd and, through etcdutl, into the real etcd
// reproduces detcd's state, and `detcd snapshot status` of it reports
// detcd's revision and HashKV. Each restore starts servers, so the histories
// are drawn as examples (seeds 0 to -snaphist.n - 1) rather than by
// rapid.Check, which would run hundreds; a failure names its seed.
func TestSnapshotHistories(t *testing.T) {
	gen := rapid.Custom(genSnapHistory)
	for seed := range *snapHistories {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			h := gen.Example(seed)
			addr, _ := startInProcDetcd(t, true)
			runSnapHistory(t, addr, h)
			want := readSnapState(t, addr)
			file := saveSnap(t, addr)
			if st, _, err := server.SnapshotStatus(file); err != nil || st.Revision != want.Rev || st.Hash != want.Hash {
				t.Errorf("detcd snapshot status of history %d: %+v %v; want revision %d, HashKV %d", seed, st, err, want.Rev, want.Hash)
			}
			for name, got := range map[string]string{
				"detcd": restoreIntoDetcd(t, file, server.RestoreOptions{}),
				"etcd":  restoreIntoEtcd(t, file),
			} {
				if diff := cmp.Diff(want, readSnapState(t, got), protocmp.Transform()); diff != "" {
					t.Errorf("%s restored from detcd's snapshot of history %d (-detcd +%s):\n%s\nhistory: %+v", name, seed, name, diff, h)
				}
			}
		})
	}
}

// snapOp is one request of a generated history; which fields count
// depends on Kind.
type snapOp struct {
	Kind       string
	Keys       []string
	Value      string
	Lease      int // index into the leases granted so far
	Del        []bool
	TTL        int64
	Name, Role string
}

var snapKeys = rapid.SampledFrom([]string{"a", "b", "ba", "c", "d/1", "d/2"})

func genSnapHistory(t *rapid.T) []snapOp {
	ops := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) snapOp {
		op := snapOp{Kind: rapid.SampledFrom([]string{"put", "put", "put", "del", "txn", "compact", "grant", "revoke", "user", "role", "grant-perm", "grant-role"}).Draw(t, "kind")}
		op.Keys = rapid.SliceOfNDistinct(snapKeys, 1, 3, rapid.ID).Draw(t, "keys")
		for range op.Keys {
			op.Del = append(op.Del, rapid.IntRange(0, 3).Draw(t, "del") == 0)
		}
		op.Value = rapid.StringMatching(`[a-z]{0,6}`).Draw(t, "value")
		op.Lease = rapid.IntRange(-1, 3).Draw(t, "lease")
		op.TTL = rapid.Int64Range(10, 100000).Draw(t, "ttl")
		op.Name = rapid.SampledFrom([]string{"alice", "bob"}).Draw(t, "user")
		op.Role = rapid.SampledFrom([]string{"reader", "writer"}).Draw(t, "role")
		return op
	}), 1, 40).Draw(t, "ops")
	return ops
}

// runSnapHistory sends a history to the member at addr, then makes root
// and enables auth. Requests the member refuses (a compaction of a
// compacted revision, a revoked lease) are part of the history too.
func runSnapHistory(t *testing.T, addr string, h []snapOp) {
	t.Helper()
	cli := newSnapClient(t, addr, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), snapTimeout)
	defer cancel()
	var leases []clientv3.LeaseID
	leaseOpt := func(i int) []clientv3.OpOption {
		if i < 0 || i >= len(leases) {
			return nil
		}
		return []clientv3.OpOption{clientv3.WithLease(leases[i])}
	}
	var rev int64
	for _, op := range h {
		var err error
		switch op.Kind {
		case "put":
			var r *clientv3.PutResponse
			r, err = cli.Put(ctx, op.Keys[0], op.Value, leaseOpt(op.Lease)...)
			if err == nil {
				rev = r.Header.Revision
			}
		case "del":
			_, err = cli.Delete(ctx, op.Keys[0], clientv3.WithPrefix())
		case "txn":
			var ops []clientv3.Op
			for i, k := range op.Keys {
				if op.Del[i] {
					ops = append(ops, clientv3.OpDelete(k))
				} else {
					ops = append(ops, clientv3.OpPut(k, op.Value, leaseOpt(op.Lease)...))
				}
			}
			_, err = cli.Txn(ctx).Then(ops...).Commit()
		case "compact":
			_, err = cli.Compact(ctx, max(rev, 1), clientv3.WithCompactPhysical())
		case "grant":
			var r *clientv3.LeaseGrantResponse
			if r, err = cli.Grant(ctx, op.TTL); err == nil {
				leases = append(leases, r.ID)
			}
		case "revoke":
			if op.Lease >= 0 && op.Lease < len(leases) {
				_, err = cli.Revoke(ctx, leases[op.Lease])
			}
		case "user":
			_, err = cli.UserAdd(ctx, op.Name, op.Value+"pw")
		case "role":
			_, err = cli.RoleAdd(ctx, op.Role)
		case "grant-perm":
			_, err = cli.RoleGrantPermission(ctx, op.Role, op.Keys[0], clientv3.GetPrefixRangeEnd(op.Keys[0]), clientv3.PermissionType(op.Lease&1))
		case "grant-role":
			_, err = cli.UserGrantRole(ctx, op.Name, op.Role)
		}
		if err != nil && ctx.Err() != nil {
			t.Fatalf("%+v: %v", op, err)
		}
	}
	for _, f := range []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
}
