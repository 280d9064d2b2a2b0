package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/etcddb"
	"github.com/detcd/detcd/grpcsvc"
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
	if err := Restore(cfg, file, RestoreOptions{MarkCompacted: true}); err == nil {
		t.Fatal("--mark-compacted without --bump-revision was accepted (etcdutl refuses it)")
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

// TestSnapshotRestoreFormats: the Snapshot stream is etcd's database file
// (bolt's magic at its head) with its SHA-256; restore still takes a backup
// in detcd's own older format; a file of neither format, or a bolt file
// without etcd's schema, is refused with a clear error and leaves no data
// directory.
func TestSnapshotRestoreFormats(t *testing.T) {
	srv, cli := testServer(t, t.TempDir(), nil)
	for i := range 5 {
		if _, err := cli.Put(ctx(t), fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	_, b := saveSnapshot(t, cli)
	if !etcddb.IsBolt(b) || len(b)%512 != sha256.Size {
		t.Fatalf("the snapshot stream is not a bolt file and its hash: %d bytes, head %x", len(b), b[:32])
	}
	if left, _ := filepath.Glob(filepath.Join(srv.cfg.DataDir, grpcsvc.SnapshotTempPrefix+"*")); len(left) != 0 {
		t.Errorf("the snapshot's temporary files were left: %v", left)
	}

	old := oldFormatBackup(t, srv)
	st, _, err := SnapshotStatus(old)
	if err != nil || st.Revision != 6 || st.Keys != 5 {
		t.Fatalf("status of a detcd-format backup: %+v %v", st, err)
	}
	dir := filepath.Join(t.TempDir(), "from-old")
	if err := Restore(restoreCfg(dir), old, RestoreOptions{}); err != nil {
		t.Fatalf("restore of a detcd-format backup: %v", err)
	}
	_, restored := testServer(t, dir, nil)
	if r, err := restored.Get(ctx(t), "k", clientv3.WithPrefix()); err != nil || r.Header.Revision != 6 || len(r.Kvs) != 5 {
		t.Fatalf("restored from a detcd-format backup: %v %v", r, err)
	}

	for _, tc := range []struct {
		name, want string
		content    []byte
	}{
		{"garbage", "neither etcd's database file nor a detcd backup", withHash(bytes.Repeat([]byte{0xfe}, 4096))},
		{"bolt without etcd's buckets", "no \"key\" bucket", withHash(boltFile(t, map[string]map[string]string{"other": nil}))},
		{"bolt with only the key bucket", "no \"meta\" bucket", withHash(boltFile(t, map[string]map[string]string{"key": nil}))},
	} {
		file := filepath.Join(t.TempDir(), "bad.db")
		if err := os.WriteFile(file, tc.content, 0o600); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "restored")
		err := Restore(restoreCfg(dir), file, RestoreOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: restore: %v, want an error with %q", tc.name, err, tc.want)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: a failed restore left %s (%v)", tc.name, dir, err)
		}
		if _, _, err := SnapshotStatus(file); err == nil {
			t.Errorf("%s: status accepted it", tc.name)
		}
	}
}

// A bucket entry that does not decode fails the restore halfway through
// writing the checkpoint; restored into a directory that was there, the
// restore leaves no member directory in it.
func TestSnapshotRestoreFailsHalfway(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.db")
	content := withHash(boltFile(t, map[string]map[string]string{"meta": nil, "key": {"x": "y"}}))
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	err := Restore(restoreCfg(dir), file, RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "is not a revision") || !strings.Contains(err.Error(), file) {
		t.Fatalf("restore: %v, want the bad entry and the file named", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "member")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed restore left %s/member (%v)", dir, err)
	}
}

func restoreCfg(dir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.InitialCluster = dir, "default=http://127.0.0.1:2380"
	cfg.InitialAdvertisePeerURLs = []string{"http://127.0.0.1:2380"}
	return cfg
}

// oldFormatBackup writes the member's state as Maintenance.Snapshot
// streamed it before it streamed etcd's file: detcd's checkpoint, padded
// to 512 bytes, and its SHA-256.
func oldFormatBackup(t *testing.T, srv *Server) string {
	t.Helper()
	resp, err := srv.Do(ctx(t), core.Request{Backup: true})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := resp.Backup.Write(&buf); err != nil {
		t.Fatal(err)
	}
	buf.Write(make([]byte, (512-buf.Len()%512)%512))
	file := filepath.Join(t.TempDir(), "old.db")
	if err := os.WriteFile(file, withHash(buf.Bytes()), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func withHash(b []byte) []byte {
	h := sha256.Sum256(b)
	return append(slices.Clone(b), h[:]...)
}

// boltFile is a bolt database with the buckets and entries given.
func boltFile(t *testing.T, buckets map[string]map[string]string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bolt.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for name, entries := range buckets {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			for k, v := range entries {
				if err := b.Put([]byte(k), []byte(v)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSnapshotTempsRemovedAtStart: the temporary directory of a snapshot
// that a crash interrupted does not stay in the data dir.
func TestSnapshotTempsRemovedAtStart(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, grpcsvc.SnapshotTempPrefix+"123")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(left, "db"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	removeSnapshotTemps(dir, slog.New(slog.DiscardHandler))
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("%s still there after start-up clean-up: %v", left, err)
	}
}

// TestSnapshotRestoreKeepsAlarms: a backup taken under NOSPACE restores a
// cluster that still has the alarm and refuses writes until it is
// disarmed, as etcdutl snapshot restore's does (checked against etcd
// 3.7.3: its alarm list and status show the backup's alarm after a
// restore, and a put fails with "database space exceeded").
func TestSnapshotRestoreKeepsAlarms(t *testing.T) {
	_, cli := testServer(t, t.TempDir(), func(c *Config) { c.QuotaBackendBytes = 8 << 20 })
	value := strings.Repeat("v", 64<<10)
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		_, full = cli.Put(ctx(t), fmt.Sprintf("k%d", i%4), value)
	}
	if !errors.Is(full, rpctypes.ErrNoSpace) {
		t.Fatalf("writing past the quota: %v", full)
	}
	if a, err := cli.AlarmList(ctx(t)); err != nil || len(a.Alarms) != 1 {
		t.Fatalf("alarm list before the backup: %v %v", a, err)
	}
	file, _ := saveSnapshot(t, cli)

	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.InitialCluster = dir, "default=http://127.0.0.1:2380"
	cfg.InitialAdvertisePeerURLs = []string{"http://127.0.0.1:2380"}
	if err := Restore(cfg, file, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	_, restored := testServer(t, dir, nil)
	alarms, err := restored.AlarmList(ctx(t))
	if err != nil || len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm.String() != "NOSPACE" {
		t.Fatalf("alarm list after the restore: %v %v", alarms, err)
	}
	if _, err := restored.Put(ctx(t), "small", "x"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("a write after the restore: %v", err)
	}
	if _, err := restored.AlarmDisarm(ctx(t), (*clientv3.AlarmMember)(alarms.Alarms[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := restored.Put(ctx(t), "small", "x"); err != nil {
		t.Fatalf("a write once disarmed (default quota): %v", err)
	}
}

// TestSnapshotStatusStreams: status reads a backup's key space from a
// mapped scratch file, not into the heap: the status of a backup of
// 16 MiB of values allocates a small part of that (reading it whole took
// three times the file at 8 GiB).
func TestSnapshotStatusStreams(t *testing.T) {
	s, cli := testServer(t, t.TempDir(), nil)
	const keys, valueBytes = 256, 64 << 10
	value := strings.Repeat("v", valueBytes)
	for i := range keys {
		if _, err := cli.Put(ctx(t), fmt.Sprintf("k%03d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	file, _ := saveSnapshot(t, cli)
	cli.Close()
	s.Stop()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	st, _, err := SnapshotStatus(file)
	runtime.ReadMemStats(&after)
	if err != nil || st.Keys != keys || st.Revision != keys+1 {
		t.Fatalf("status: %+v %v", st, err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > keys*valueBytes/4 {
		t.Errorf("status of a backup of %d MiB of values allocated %d MiB", keys*valueBytes>>20, got>>20)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".detcd-status-*")); len(matches) > 0 {
		t.Errorf("scratch files left: %v", matches)
	}
}
