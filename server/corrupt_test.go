package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/mvcc"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/diskfs"
)

func reply(id uint64, rev, compactRev int64, hash uint32) peerHash {
	return peerHash{id: id, reply: &hashKVReply{MemberID: id, Revision: rev, CompactRevision: compactRev, Hash: hash}}
}

func noReply(id uint64) peerHash { return peerHash{id: id, err: errors.New("unreachable")} }

func TestInitialMismatches(t *testing.T) {
	local := mvcc.KVHash{Hash: 7, CompactRev: 3, Rev: 10}
	for _, c := range []struct {
		name  string
		peers []peerHash
		want  int
	}{
		{"same hash", []peerHash{reply(2, 10, 3, 7), reply(3, 12, 3, 7)}, 0},
		{"other hash, same compaction", []peerHash{reply(2, 10, 3, 7), reply(3, 10, 3, 8)}, 1},
		{"other hash, other compaction: skipped", []peerHash{reply(2, 10, 5, 8)}, 0},
		{"unreachable or compacted: skipped", []peerHash{noReply(2), {id: 3, err: core.ErrCompacted}}, 0},
	} {
		if got, _ := initialMismatches(local, c.peers); got != c.want {
			t.Errorf("%s: %d mismatches, want %d", c.name, got, c.want)
		}
	}
}

func TestPeriodicSuspect(t *testing.T) {
	h := mvcc.KVHash{Hash: 7, CompactRev: 3, Rev: 10}
	for _, c := range []struct {
		name    string
		h2      mvcc.KVHash
		rev2    int64
		peers   []peerHash
		want    uint64
		wantHit bool
	}{
		{"all agree", h, 10, []peerHash{reply(2, 10, 3, 7), reply(3, 9, 3, 7)}, 0, false},
		{"leader's own hash changed", mvcc.KVHash{Hash: 8, CompactRev: 3, Rev: 10}, 10, nil, 1, true},
		{"follower ahead of the leader", h, 10, []peerHash{reply(2, 11, 3, 7)}, 2, true},
		{"follower compacted past the leader", h, 10, []peerHash{reply(2, 10, 4, 7)}, 2, true},
		{"follower's hash differs: the first one only", h, 10, []peerHash{noReply(2), reply(3, 10, 3, 8), reply(4, 10, 3, 9)}, 3, true},
		{"other compaction, other hash: not comparable", h, 12, []peerHash{reply(2, 10, 2, 8)}, 0, false},
	} {
		got, hit, _ := periodicSuspect(1, h, c.h2, c.rev2, c.peers)
		if got != c.want || hit != c.wantHit {
			t.Errorf("%s: suspect %d, %v; want %d, %v", c.name, got, hit, c.want, c.wantHit)
		}
	}
}

func TestCompactHashVerdict(t *testing.T) {
	leader := mvcc.KVHash{Hash: 7, CompactRev: 3, Rev: 5}
	for _, c := range []struct {
		name      string
		peers     []peerHash
		alarms    []uint64
		done, all bool
	}{
		{"all agree", []peerHash{reply(2, 9, 3, 7), reply(3, 9, 3, 7)}, nil, true, true},
		{"one skipped: try an older revision", []peerHash{reply(2, 9, 3, 7), noReply(3)}, nil, false, false},
		{"other compaction skipped", []peerHash{reply(2, 9, 3, 7), reply(3, 9, 4, 1)}, nil, false, false},
		{"a follower differs", []peerHash{reply(2, 9, 3, 7), reply(3, 9, 3, 8)}, []uint64{3}, true, false},
		{"the leader differs", []peerHash{reply(2, 9, 3, 8), reply(3, 9, 3, 8)}, []uint64{1}, true, false},
		{"two minorities", []peerHash{reply(2, 9, 3, 7), reply(3, 9, 3, 7), reply(4, 9, 3, 8), reply(5, 9, 3, 9)}, []uint64{4, 5}, true, false},
		{"no majority: the cluster", []peerHash{reply(2, 9, 3, 8), reply(3, 9, 3, 9)}, []uint64{0}, true, false},
	} {
		alarms, done, all, _ := compactHashVerdict(1, leader, c.peers)
		if !slices.Equal(alarms, c.alarms) || done != c.done || all != c.all {
			t.Errorf("%s: alarms %v done %v all %v; want %v %v %v", c.name, alarms, done, all, c.alarms, c.done, c.all)
		}
	}
}

// tamperValue rewrites a stopped member's log so that the put of key
// carries another value of the same size: the member replays it into a
// key space that differs from its peers' at the same revision, as silent
// corruption would leave it.
func tamperValue(t *testing.T, dataDir, key string) {
	t.Helper()
	if cks, _ := os.ReadDir(filepath.Join(dataDir, "member", "snap")); len(cks) > 0 {
		t.Fatalf("the member wrote a checkpoint; the test tampers with its log only")
	}
	fsys := diskfs.New(dataDir)
	opts := wal.Options{Dir: "member/wal"}
	w, rec, err := wal.Open(fsys, opts, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	found := false
	for i, e := range rec.Entries {
		var r pb.InternalRaftRequest
		if proto.Unmarshal(e.Data, &r) != nil || r.Put == nil || string(r.Put.Key) != key {
			continue
		}
		r.Put.Value = []byte("tampered")
		if rec.Entries[i].Data, err = proto.Marshal(&r); err != nil {
			t.Fatal(err)
		}
		found = true
	}
	if !found {
		t.Fatalf("no put of %q in the log", key)
	}
	if err := os.RemoveAll(filepath.Join(dataDir, "member", "wal")); err != nil {
		t.Fatal(err)
	}
	if w, err = wal.Create(fsys, opts, rec.Meta); err != nil {
		t.Fatal(err)
	}
	if err := w.Save(&rec.HardState, rec.Entries); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitApplied waits until every running member is at the revision.
func (tc *testCluster) waitApplied(rev int64) {
	tc.t.Helper()
	for i := 0; i < 400; i++ {
		all := true
		for _, s := range tc.servers {
			all = all && (s == nil || s.Rev() >= rev)
		}
		if all {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tc.t.Fatalf("members never reached revision %d", rev)
}

// corruptMember writes to the cluster, then stops a follower, tampers with
// its log and restarts it; it returns the follower's index.
func (tc *testCluster) corruptMember(cli *clientv3.Client) int {
	tc.t.Helper()
	ctx := context.Background()
	var rev int64
	for _, k := range []string{"a", "b", "c"} {
		r, err := cli.Put(ctx, k, "original")
		if err != nil {
			tc.t.Fatal(err)
		}
		rev = r.Header.Revision
	}
	tc.waitApplied(rev)
	i := (tc.leader() + 1) % len(tc.servers)
	tc.stop(i)
	tamperValue(tc.t, tc.cfgs[i].DataDir, "b")
	return i
}

// TestInitialCorruptCheck: with the InitialCorruptCheck gate, a member
// restarting on data that differs from its peers' refuses to start with
// etcd's error; one with the same data starts.
func TestInitialCorruptCheck(t *testing.T) {
	tc := newTestClusterWith(t, 3, "http", func(c *Config) { c.FeatureGates = "InitialCorruptCheck=true" })
	tc.leader()
	cli := tc.client(tc.leader())
	i := tc.corruptMember(cli)
	s, err := New(tc.cfgs[i])
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start()
	s.Stop()
	if !errors.Is(err, ErrDataInconsistency) {
		t.Fatalf("start on tampered data: %v, want %v", err, ErrDataInconsistency)
	}
	want := "found data inconsistency with peers"
	if got := err.Error(); len(got) < len(want) || got[len(got)-len(want):] != want {
		t.Fatalf("error %q, want etcd's %q", got, want)
	}
	// A member whose data agrees passes the check.
	j := 3 - i - tc.leader()
	tc.stop(j)
	tc.start(j)
}

// TestCorruptChecksRaiseAlarm: the leader's periodic check and its
// compaction hash check find the member whose data differs and raise
// CORRUPT for it; writes then fail with etcd's DataLoss error on every
// member until the alarm is cleared.
func TestCorruptChecksRaiseAlarm(t *testing.T) {
	for _, c := range []struct {
		name    string
		mod     func(*Config)
		compact bool
	}{
		{"periodic", func(c *Config) { c.CorruptCheckTime = 200 * time.Millisecond }, false},
		{"compaction hash", func(c *Config) {
			c.FeatureGates = "CompactHashCheck=true"
			c.CompactHashCheckTime = 200 * time.Millisecond
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc := newTestClusterWith(t, 3, "http", c.mod)
			cli := tc.client(tc.leader())
			i := tc.corruptMember(cli)
			tc.start(i)
			ctx := context.Background()
			if c.compact {
				r, err := cli.Put(ctx, "d", "x")
				if err != nil {
					t.Fatal(err)
				}
				tc.waitApplied(r.Header.Revision)
				if _, err := cli.Compact(ctx, r.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
					t.Fatal(err)
				}
			}
			id := tc.servers[i].node.ID()
			var alarms []*pb.AlarmMember
			for n := 0; n < 400 && len(alarms) == 0; n++ {
				time.Sleep(50 * time.Millisecond)
				r, err := cli.AlarmList(ctx)
				if err != nil {
					t.Fatal(err)
				}
				alarms = r.Alarms
			}
			if len(alarms) != 1 || alarms[0].MemberID != id || alarms[0].Alarm != pb.AlarmType_CORRUPT {
				t.Fatalf("alarms %v, want CORRUPT for member %x", alarms, id)
			}
			for j := range tc.servers {
				_, err := tc.client(j).Put(ctx, "k", "v")
				var ee rpctypes.EtcdError
				if !errors.Is(err, rpctypes.ErrCorrupt) || !errors.As(err, &ee) || ee.Code() != codes.DataLoss {
					t.Fatalf("put on member %d with CORRUPT raised: %v", j, err)
				}
			}
			hr, err := http.Get(tc.cfgs[tc.leader()].AdvertiseClientURLs[0] + "/health")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(hr.Body)
			hr.Body.Close()
			if hr.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"reason":"ALARM CORRUPT"`) {
				t.Fatalf("/health with CORRUPT raised: %d %s", hr.StatusCode, body)
			}
			// The checks raise the alarm again while the member is there,
			// as etcd's do: take it out, then clear the alarm. A check that
			// had its answer before may still raise it once more.
			tc.stop(i)
			for n := 0; n < 20; n++ {
				if _, err = cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: id, Alarm: pb.AlarmType_CORRUPT}); err != nil {
					t.Fatal(err)
				}
				if _, err = cli.Put(ctx, "k", "v"); !errors.Is(err, rpctypes.ErrCorrupt) {
					break
				}
			}
			if err != nil {
				t.Fatalf("put after disarming: %v", err)
			}
		})
	}
}
