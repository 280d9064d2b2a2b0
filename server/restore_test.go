package server

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestSnapshotRestore: a snapshot streamed by Maintenance.Snapshot
// restores into a new 3-member cluster with the same keys, revisions and
// leases, and a new membership; a damaged file or a used data directory
// is refused.
func TestSnapshotRestore(t *testing.T) {
	_, cli := testServer(t, t.TempDir(), nil)
	c := ctx(t)
	lease, err := cli.Grant(c, 3600)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := cli.Put(c, fmt.Sprintf("k%03d", i), strings.Repeat("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(c, "leased", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(c, "k000"); err != nil {
		t.Fatal(err)
	}
	want, err := cli.Get(c, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	file, b := saveSnapshot(t, cli)

	tc := newRestoredCluster(t, 3, file)
	tc.leader()
	got, err := tc.client(1).Get(ctx(t), "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Revision != want.Header.Revision || len(got.Kvs) != len(want.Kvs) {
		t.Fatalf("restored: revision %d, %d keys; want %d, %d", got.Header.Revision, len(got.Kvs), want.Header.Revision, len(want.Kvs))
	}
	for i := range want.Kvs {
		if got.Kvs[i].String() != want.Kvs[i].String() {
			t.Fatalf("restored key %d: %v, want %v", i, got.Kvs[i], want.Kvs[i])
		}
	}
	ttl, err := tc.client(2).TimeToLive(ctx(t), lease.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || len(ttl.Keys) != 1 {
		t.Fatalf("restored lease: %+v %v", ttl, err)
	}
	ml, err := tc.client(0).MemberList(ctx(t))
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("restored members: %v %v", ml, err)
	}
	if r, err := tc.client(0).Put(ctx(t), "after", "restore"); err != nil || r.Header.Revision != want.Header.Revision+1 {
		t.Fatalf("put after restore: %v %v", r, err)
	}

	again := tc.cfgs[0]
	if err := Restore(again, file, RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "already holds a log") {
		t.Fatalf("restore into a used data directory: %v", err)
	}
	noHash := filepath.Join(t.TempDir(), "nohash.db")
	os.WriteFile(noHash, b[:len(b)-32], 0o600)
	for _, skip := range []bool{false, true} {
		fresh := again
		fresh.DataDir = t.TempDir()
		if err := Restore(fresh, noHash, RestoreOptions{SkipHashCheck: skip}); (err == nil) != skip {
			t.Fatalf("restore of a file without its hash, skip-hash-check %v: %v", skip, err)
		}
	}
	b[len(b)/2] ^= 1
	damaged := filepath.Join(t.TempDir(), "damaged.db")
	os.WriteFile(damaged, b, 0o600)
	fresh := again
	fresh.DataDir = t.TempDir()
	if err := Restore(fresh, damaged, RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("restore of a damaged file: %v", err)
	}
}

// saveSnapshot writes the member's snapshot to a file, as etcdctl snapshot
// save does, and returns its path and content.
func saveSnapshot(t *testing.T, cli *clientv3.Client) (string, []byte) {
	t.Helper()
	rc, err := cli.Snapshot(ctx(t))
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
	return file, b
}

// newRestoredCluster restores n members from a snapshot file and starts
// them as a new cluster.
func newRestoredCluster(t *testing.T, n int, file string) *testCluster {
	return newTestClusterWithData(t, n, "http", nil, func(cfg Config) {
		if err := Restore(cfg, file, RestoreOptions{}); err != nil {
			t.Fatalf("restore %s: %v", cfg.Name, err)
		}
	})
}

// TestSnapshotRestoreBump: --bump-revision with --mark-compacted raises
// the revision and compacts at it, as etcdutl does; status reads a file.
func TestSnapshotRestoreBump(t *testing.T) {
	_, cli := testServer(t, t.TempDir(), nil)
	for i := range 5 {
		if _, err := cli.Put(ctx(t), fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	file, b := saveSnapshot(t, cli)
	st, size, err := SnapshotStatus(file)
	if err != nil || st.Revision != 6 || st.Keys != 5 || size != int64(len(b)) {
		t.Fatalf("status: %+v %d %v", st, size, err)
	}

	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.InitialCluster = dir, "default=http://127.0.0.1:2380"
	cfg.InitialAdvertisePeerURLs = []string{"http://127.0.0.1:2380"}
	if err := Restore(cfg, file, RestoreOptions{BumpRevision: 1000}); err == nil {
		t.Fatal("--bump-revision without --mark-compacted was accepted")
	}
	if err := Restore(cfg, file, RestoreOptions{BumpRevision: 1000, MarkCompacted: true}); err != nil {
		t.Fatal(err)
	}
	_, restored := testServer(t, dir, nil)
	r, err := restored.Get(ctx(t), "k", clientv3.WithPrefix())
	if err != nil || r.Header.Revision != 1006 || len(r.Kvs) != 5 {
		t.Fatalf("after a bumped restore: %v %v", r, err)
	}
	if _, err := restored.Get(ctx(t), "k0", clientv3.WithRev(6)); err == nil {
		t.Fatal("a read below the bumped revision was not compacted")
	}
	if p, err := restored.Put(ctx(t), "k9", "v"); err != nil || p.Header.Revision != 1007 {
		t.Fatalf("put after a bumped restore: %v %v", p, err)
	}
}
